"""Answer latency: first token and steady-state ms per token of `gpt2tune.generate.stream_answer`.

    python bench/generate_speed.py [--config 124m] [--tokens 64] [--repeats 3]

A randomly initialised GPT-2 of the named size with the real tokenizer (speed does not depend on the
weights). Every new token reaches the streamer through `put()`; timing those calls gives the prefill
+ first token time and the gap between later tokens. With the KV cache each later token is one
forward step over one position, so the gap stays flat as the answer grows (reported: first and last
quarter of the tokens).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

QUESTION = "What does the immune system do when a vaccine is given, and how long does the protection last?"


def timed_stream(model, tokenizer, settings) -> tuple[float, list[float], str]:
    """(seconds to the first new token, gaps between later tokens, answer) of one streamed answer."""
    from transformers import TextIteratorStreamer

    from gpt2tune.generate import stream_answer

    stamps = []
    original_put = TextIteratorStreamer.put

    def put(self, value):
        stamps.append(time.perf_counter())
        return original_put(self, value)

    TextIteratorStreamer.put = put
    try:
        start = time.perf_counter()
        text = ""
        for text in stream_answer(model, tokenizer, QUESTION, settings):
            pass
    finally:
        TextIteratorStreamer.put = original_put
    tokens = stamps[1:]  # the first put() is the prompt
    return tokens[0] - start, [b - a for a, b in itertools.pairwise(tokens)], text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="124m", choices=("small", "124m"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    from bench.train_speed import make_base_model
    from gpt2tune.config import GenerationSettings
    from gpt2tune.generate import ModelCache

    with tempfile.TemporaryDirectory() as work:
        folder, params = make_base_model(args.config, Path(work) / args.config)
        t0 = time.perf_counter()
        model, tokenizer = ModelCache().get(str(folder))
        load_s = time.perf_counter() - t0
        # min_new_tokens: a random model may emit EOS at any point; the timing needs a fixed length.
        model.generation_config.min_new_tokens = args.tokens
        settings = GenerationSettings(max_new_tokens=args.tokens)
        timed_stream(model, tokenizer, settings)  # warm-up: first-call allocations
        firsts, early, late = [], [], []
        for _ in range(args.repeats):
            first, gaps, _ = timed_stream(model, tokenizer, settings)
            quarter = max(1, len(gaps) // 4)
            firsts.append(first)
            early += gaps[:quarter]
            late += gaps[-quarter:]
    prompt_tokens = len(tokenizer(QUESTION)["input_ids"])
    result = {
        "model": args.config, "parameters_m": params / 1e6, "torch_threads": torch.get_num_threads(),
        "load_s": load_s, "prompt_tokens_approx": prompt_tokens + 4, "new_tokens": args.tokens,
        "first_token_ms": 1000 * statistics.median(firsts),
        "steady_ms_per_token_first_quarter": 1000 * statistics.median(early),
        "steady_ms_per_token_last_quarter": 1000 * statistics.median(late),
    }
    result["steady_tokens_per_s"] = 1000 / result["steady_ms_per_token_last_quarter"]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
