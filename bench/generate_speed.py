"""Answer latency: first token and steady-state ms per token of `gpt2tune.generate.stream_answer`.

    python bench/generate_speed.py [--config 124m] [--tokens 64] [--repeats 3] [--weights fp32,bf16,int8]

A randomly initialised GPT-2 of the named size with the real tokenizer (speed does not depend on the
weights). The answer stream yields once per new token; timing the yields gives the prefill + first
token time and the gap between later tokens. With the KV cache each later token is one
forward step over one position, so the gap stays flat as the answer grows (reported: first and last
quarter of the tokens).

`--weights` compares generation weight formats (gpt2tune/generation_weights.py) with fp32: speed, and
agreement of greedy answers to pubmedqa questions (identical answers, and the share of each fp32
answer reproduced before the first different token). One JSON line per format.
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
    """(seconds to the first new token, gaps between later tokens, answer) of one streamed answer.
    The stream yields once per new token (a token ending inside a multi-byte character waits for the
    next one), so the yields' times are the tokens' times."""
    from gpt2tune.generate import stream_answer

    stamps = []
    start = time.perf_counter()
    text = ""
    for text in stream_answer(model, tokenizer, QUESTION, settings):
        stamps.append(time.perf_counter())
    return stamps[0] - start, [b - a for a, b in itertools.pairwise(stamps)], text


def measure(model, tokenizer, tokens: int, repeats: int) -> dict:
    from gpt2tune.config import GenerationSettings

    # min_new_tokens: a random model may emit EOS at any point; the timing needs a fixed length.
    model.generation_config.min_new_tokens = tokens
    settings = GenerationSettings(max_new_tokens=tokens)
    warmup_start = time.perf_counter()
    timed_stream(model, tokenizer, settings)  # warm-up: first-call allocations (and compilation)
    warmup_s = time.perf_counter() - warmup_start
    firsts, early, late = [], [], []
    for _ in range(repeats):
        first, gaps, _ = timed_stream(model, tokenizer, settings)
        quarter = max(1, len(gaps) // 4)
        firsts.append(first)
        early += gaps[:quarter]
        late += gaps[-quarter:]
    model.generation_config.min_new_tokens = None
    result = {
        "warmup_s": warmup_s,
        "first_token_ms": 1000 * statistics.median(firsts),
        "steady_ms_per_token_first_quarter": 1000 * statistics.median(early),
        "steady_ms_per_token_last_quarter": 1000 * statistics.median(late),
    }
    result["steady_tokens_per_s"] = 1000 / result["steady_ms_per_token_last_quarter"]
    return result


def decoding_options(generation_config, options: list[str]):
    """A copy of the model's generation config with a static KV cache and/or a compiled decoding step
    (transformers compiles on a CPU only when told to: `_compile_all_devices`)."""
    import copy

    from transformers import CompileConfig

    unknown = set(options) - {"static", "compile"}
    if unknown:
        raise SystemExit(f"unknown decoding option(s): {', '.join(sorted(unknown))} (use static, compile)")
    config = copy.deepcopy(generation_config)
    if "static" in options or "compile" in options:
        config.cache_implementation = "static"
    if "compile" in options:
        config.compile_config = CompileConfig(fullgraph=False, dynamic=False)
        config.compile_config._compile_all_devices = True
    else:
        config.disable_compile = True
    return config


def greedy_answers(model, tokenizer, questions: list[str], tokens: int) -> list[list[int]]:
    """Greedy answers as token ids (batched, the scoring path), for agreement with fp32."""
    from gpt2tune.evaluation.evaluate import answer_many, greedy_settings

    texts = answer_many(model, tokenizer, questions, greedy_settings(tokens))
    return [tokenizer(text)["input_ids"] for text in texts]


def agreement(reference: list[list[int]], other: list[list[int]]) -> dict:
    """Share of identical greedy answers, and mean share of each fp32 answer's tokens that the other
    format reproduces before its first difference."""
    same = sum(a == b for a, b in zip(reference, other))
    prefixes = []
    for a, b in zip(reference, other):
        common = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        prefixes.append(common / max(len(a), 1))
    return {"identical_answers": same / len(reference), "mean_prefix_agreement": statistics.mean(prefixes)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="124m", choices=("small", "124m"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", default="fp32", help="comma-separated formats to compare: fp32,bf16,int8, each "
                        "optionally with +static (a static KV cache) and +compile (torch.compile of the decoding "
                        "step, with the static cache): e.g. int8,int8+static,int8+static+compile")
    parser.add_argument("--quick", action="store_true", help="16 tokens, 2 repeats, 4 agreement questions")
    parser.add_argument("--agreement-questions", type=int, default=16,
                        help="pubmedqa questions answered greedily by each format and compared with fp32")
    args = parser.parse_args(argv)
    if args.quick:
        args.tokens, args.repeats, args.agreement_questions = 16, 2, min(args.agreement_questions, 4)

    import torch

    from bench.train_speed import make_base_model, noisy
    from gpt2tune import model_thread
    from gpt2tune.device import cpu_flags
    from gpt2tune.generate import ModelCache

    load_before = os.getloadavg()[0]
    flags = sorted(cpu_flags() & {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx2"})
    print(json.dumps({"cpu_flags": flags, "load_average": os.getloadavg()}), flush=True)
    questions = _questions(args.agreement_questions)
    results, reference = [], None
    with tempfile.TemporaryDirectory() as work:
        folder, params = make_base_model(args.config, Path(work) / args.config)
        for weights in args.weights.split(","):
            fmt, *options = weights.split("+")
            # as the app and `gpt2tune generate` load it: on the model thread, converted there
            t0 = time.perf_counter()
            model, tokenizer = ModelCache(capacity=1).get(str(folder), weights=fmt)
            load_s = time.perf_counter() - t0
            saved_config = model.generation_config
            model.generation_config = decoding_options(saved_config, options)
            result = {"model": args.config, "weights": weights, "parameters_m": params / 1e6,
                      "torch_threads": torch.get_num_threads(), "load_s": load_s, "new_tokens": args.tokens,
                      **measure(model, tokenizer, args.tokens, args.repeats)}
            if questions:
                answers = model_thread.run(greedy_answers, model, tokenizer, questions, args.tokens)
                reference = reference if reference is not None else answers if weights == "fp32" else None
                if reference is not None:
                    result.update(agreement(reference, answers))
            result["load_1min"] = os.getloadavg()[0]
            results.append(result)
            print(json.dumps(result), flush=True)
            model.generation_config = saved_config
            del model
    verdict = noisy(load_before, [])
    busiest = max(r["load_1min"] for r in results)
    if verdict is None and busiest > torch.get_num_threads() + 1:
        verdict = f"load average reached {busiest:.2f}: another process was busy"
    print(f"NOISY RUN: {verdict}" if verdict else "quiet run: no other load seen")
    return 0


def _questions(n: int) -> list[str]:
    from bench.train_speed import shared_datasets

    csv = shared_datasets() / "pubmedqa" / "qa.csv"
    if n < 1:
        return []
    from gpt2tune.data.load import load_qa_data

    return list(load_qa_data(csv if csv.exists() else ROOT / "assets" / "sample_qa.csv").frame["question"].head(n))


if __name__ == "__main__":
    sys.exit(main())
