#!/usr/bin/env bash
# Install everything the tests need, then run them. Used as-is by CI.
#   bash scripts/test.sh            # all tests
#   bash scripts/test.sh -k train   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

# PyPI's Linux torch wheel brings the CUDA libraries (several GB) even on a machine without a GPU.
# Without a GPU, and unless torch 2.13.0 is installed already, try the CPU build from PyTorch's own
# index first (2.13.0+cpu satisfies the pin below, so pip keeps it); where that index cannot be
# reached, pip falls back to whatever build its configured indexes offer.
if ! command -v nvidia-smi >/dev/null \
        && ! python3 -c "import torch, sys; sys.exit(not torch.__version__.startswith('2.13.0'))" 2>/dev/null; then
    python3 -m pip install -q --timeout 15 --retries 0 torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
        || echo "PyTorch's CPU index could not be reached: installing torch from the configured indexes"
fi
python3 -m pip install -q torch==2.13.0 -e ".[test]"

# A real browser for the UI tests: Debian's Chromium (Playwright's own download is not needed).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "chromium could not be installed: browser tests will be skipped"
fi

# Two workers: most tests wait on a child process, a server or the browser, so two of them share 2 cores
# well (about 11-12 minutes instead of 17 for the whole suite here). --dist loadfile keeps each file's
# tests on one worker, in order: the browser tests build on each other. `-n 0` runs them one by one.
exec python3 -m pytest -n 2 --dist loadfile "$@"
