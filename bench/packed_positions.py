"""Does transformers' own packed-sequence handling isolate packed examples exactly for GPT-2?

    python bench/packed_positions.py [--quick]

transformers (5.x) reads packed rows from position_ids that restart at 0 for every example when no
attention mask is given (`masking_utils.find_packed_sequence_indices`) and builds the block-diagonal
causal mask itself. gpt2tune's collator builds that mask (a 4D boolean tensor, batch x width x width)
and passes it. For SDPA and eager attention on this machine this prints, per example of a packed row:
the largest difference of its logits from the example run alone, with transformers' detection (no
mask given) and with gpt2tune's mask; then the time of a training step (forward and backward) each
way, on a 6-layer x 384 GPT-2 with 8 rows of 320 tokens, side by side in one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def packed_batch(lengths_per_row: list[list[int]], vocab: int, seed: int = 0):
    """Rows of random examples, as gpt2tune's collator makes them (its own code)."""
    import torch

    from gpt2tune.data.prep import PackedCollator

    generator = torch.Generator().manual_seed(seed)
    rows, examples = [], []
    for lengths in lengths_per_row:
        ids = [torch.randint(0, vocab, (n,), generator=generator) for n in lengths]
        examples.append(ids)
        joined = torch.cat(ids).tolist()
        rows.append({"input_ids": joined, "labels": joined, "seq_lengths": lengths})
    return PackedCollator(0)(rows), examples


def model_for(attention: str, layers: int, width: int):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=layers, n_embd=width, n_head=max(1, width // 64), resid_pdrop=0, embd_pdrop=0,
                        attn_pdrop=0, attn_implementation=attention)
    return GPT2LMHeadModel(config).eval()


def exactness(attention: str) -> dict:
    import torch

    model = model_for(attention, 2, 128)
    lengths = [[17, 40, 9], [5, 1, 30, 12]]
    batch, examples = packed_batch(lengths, model.config.vocab_size)
    mask = batch["attention_mask"]
    if attention == "eager":
        mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    with torch.no_grad():
        own = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        ours = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=mask).logits
        worst = {"transformers (position_ids only)": 0.0, "gpt2tune 4D mask": 0.0}
        for b, ids in enumerate(examples):
            start = 0
            for example in ids:
                alone = model(input_ids=example[None]).logits[0]
                end = start + len(example)
                worst["transformers (position_ids only)"] = max(worst["transformers (position_ids only)"],
                                                                (own[b, start:end] - alone).abs().max().item())
                worst["gpt2tune 4D mask"] = max(worst["gpt2tune 4D mask"], (ours[b, start:end] - alone).abs().max().item())
                start = end
    return worst


def step_seconds(attention: str, given_mask: bool, repeats: int) -> float:
    import torch

    model = model_for(attention, 6, 384).train()
    batch, _ = packed_batch([[90, 120, 60, 40]] * 8, model.config.vocab_size)  # 8 rows of 310 tokens
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "labels": batch["input_ids"]}
    if given_mask:
        mask = batch["attention_mask"]
        inputs["attention_mask"] = (mask if attention == "sdpa" else
                                    torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min))
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        start = time.perf_counter()
        model(**inputs).loss.backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[1:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 timed steps each instead of 7")
    args = parser.parse_args(argv)
    import torch
    import transformers

    from bench.train_speed import machine_description

    machine = machine_description()
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores; load average "
          f"{' '.join(f'{x:.2f}' for x in machine['load_average'])}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    repeats = 3 if args.quick else 7
    print("| attention | largest logit difference from the example alone: transformers (position_ids only) | "
          "gpt2tune 4D mask | step s, position_ids only | step s, 4D mask |")
    print("|---|---|---|---|---|")
    for attention in ("sdpa", "eager"):
        worst = exactness(attention)
        own, ours = step_seconds(attention, False, repeats), step_seconds(attention, True, repeats)
        print(f"| {attention} | {worst['transformers (position_ids only)']:.2e} | {worst['gpt2tune 4D mask']:.2e} | "
              f"{own:.3f} | {ours:.3f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
