#!/bin/sh
# GPU in one command: see bench/gpu.py (tutorial vs gpt2tune on GPT-2 124M, training and decoding).
# Appends a dated table to bench/RESULTS.md; pass --dry-run to exercise the code paths on a CPU.
cd "$(dirname "$0")/.." && exec python bench/gpu.py "$@"
