"""Does transformers' own packed-sequence handling isolate packed examples exactly for GPT-2?

    python bench/packed_positions.py [--quick]

transformers (5.x) reads packed rows from position_ids that restart at 0 for every example when no
attention mask is given and no KV cache is in use (`masking_utils.find_packed_sequence_indices`) and
builds the block-diagonal causal mask itself. gpt2tune's collator builds that mask (a 4D boolean tensor, batch x width x width)
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
    ids, positions = batch["input_ids"], batch["position_ids"]
    with torch.no_grad():
        logits = {  # use_cache left as the Trainer leaves it (GPT-2's config: True), and switched off
            "position_ids only": model(input_ids=ids, position_ids=positions).logits,
            "position_ids only, use_cache=False": model(input_ids=ids, position_ids=positions, use_cache=False).logits,
            "gpt2tune 4D mask": model(input_ids=ids, position_ids=positions, attention_mask=mask).logits,
        }
        worst = dict.fromkeys(logits, 0.0)
        for b, row in enumerate(examples):
            start = 0
            for example in row:
                alone = model(input_ids=example[None], use_cache=False).logits[0]
                end = start + len(example)
                for name, packed in logits.items():
                    worst[name] = max(worst[name], (packed[b, start:end] - alone).abs().max().item())
                start = end
    return worst


def step_seconds(attention: str, given_mask: bool, repeats: int, rows: int) -> float:
    import torch

    model = model_for(attention, 6, 384).train()
    batch, _ = packed_batch([[90, 120, 60, 40]] * rows, model.config.vocab_size)  # rows of 310 tokens
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "labels": batch["input_ids"],
              "use_cache": False}  # without it transformers does not look for packed rows (see exactness)
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
    parser.add_argument("--quick", action="store_true", help="2 rows and 3 timed steps each, instead of 8 and 7")
    args = parser.parse_args(argv)
    import torch
    import transformers

    from bench.train_speed import machine_description

    machine = machine_description()
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores; load average "
          f"{' '.join(f'{x:.2f}' for x in machine['load_average'])}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    repeats, rows = (3, 2) if args.quick else (7, 8)
    print("largest logit difference of a packed example from the same example alone:")
    for attention in ("sdpa", "eager"):
        worst = exactness(attention)
        if attention == "sdpa":
            print("| attention | " + " | ".join(worst) + " |\n" + "|---" * (len(worst) + 1) + "|", flush=True)
        print(f"| {attention} | " + " | ".join(f"{v:.2e}" for v in worst.values()) + " |", flush=True)
    print(f"\n| attention | step s ({rows} rows of 310 tokens, 6 x 384), position_ids only, use_cache=False "
          "| step s, 4D mask |\n"
          "|---|---|---|", flush=True)
    for attention in ("sdpa", "eager"):
        own, ours = step_seconds(attention, False, repeats, rows), step_seconds(attention, True, repeats, rows)
        print(f"| {attention} | {own:.3f} | {ours:.3f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
