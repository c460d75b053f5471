"""What the loss on labelled positions saves: one training step (forward, backward, AdamW) with the
model's full loss against `gpt2tune.loss.labelled_loss`, on the same packed batches.

    python bench/labelled_loss.py [--configs small,124m] [--csv ../shared/datasets/pubmedqa/qa.csv] [--steps 4]

GPT-2 of the named size, randomly initialised, real tokenizer; batches of 4 packed rows of 256 tokens
(gpt2tune's training batches); the two variants alternate step by step so that a noisy neighbour
slows both alike. Prints the labelled share of positions and ms per step for each, with the load.
"""

from __future__ import annotations

import argparse
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_csv = ROOT.parent / "shared" / "datasets" / "pubmedqa" / "qa.csv"
    parser.add_argument("--csv", default=str(default_csv if default_csv.exists() else ROOT / "assets" / "sample_qa.csv"))
    parser.add_argument("--configs", default="small,124m")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant (after one untimed)")
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from bench.train_speed import machine_description, make_base_model
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.data.prep import PackedCollator, prepare_datasets, split_frame
    from gpt2tune.model import load_tokenizer
    from gpt2tune.loss import labelled_loss

    machine = machine_description()
    print(json.dumps(machine), flush=True)
    frame = load_qa_data(args.csv).frame
    with tempfile.TemporaryDirectory() as work:
        for config_name in args.configs.split(","):
            folder, params = make_base_model(config_name, Path(work) / config_name)
            tokenizer = load_tokenizer(str(folder))
            train_set = prepare_datasets(*split_frame(frame, 0.0, 0), tokenizer, args.max_length, True, True)[0]
            collate = PackedCollator(tokenizer.pad_token_id)
            batches = [collate([train_set[i] for i in range(start, start + 4)])
                       for start in range(0, 4 * (args.steps + 1), 4)]
            for batch in batches:
                batch.pop("num_real_tokens")
            labelled = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
            positions = sum(b["labels"].numel() for b in batches)
            model = AutoModelForCausalLM.from_pretrained(folder, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
            variants = {"full": lambda b, m=model: m(**b).loss, "labelled": lambda b, m=model: labelled_loss(m, b)}
            times = {name: [] for name in variants}
            for step, batch in enumerate(batches):
                for name, loss_of in variants.items():
                    started = time.perf_counter()
                    loss_of(batch).backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    if step:  # the first step of each is warm-up
                        times[name].append(time.perf_counter() - started)
            full, mine = statistics.median(times["full"]), statistics.median(times["labelled"])
            print(json.dumps({"model": config_name, "parameters_m": round(params / 1e6, 1),
                              "labelled_share": round(labelled / positions, 3), "full_ms_per_step": round(1000 * full),
                              "labelled_ms_per_step": round(1000 * mine), "speedup": round(full / mine, 2),
                              "load_1min": round(os.getloadavg()[0], 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
