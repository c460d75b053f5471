"""Loss on answer tokens only, or on the whole example? Train both ways, compare eval loss on answers.

    python bench/answers_only.py [--csv assets/sample_qa.csv] [--steps 60] [--sizes tiny,small]

Same data, split, seed, model and number of steps; the only difference is `train_on_answers_only`.
Both models are then scored the same way: mean cross-entropy over the answer tokens (answer + EOS)
of the held-out split, which is what a Q&A model is for. (The eval loss `train()` logs is not
comparable across the two settings: with answers_only=False it also averages the question tokens.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

SIZES = {"tiny": dict(n_layer=2, n_embd=64, n_head=2), "small": dict(n_layer=4, n_embd=256, n_head=4)}


def answer_loss(model_dir: Path, config) -> float:
    """Mean cross-entropy over the eval split's answer tokens, examples packed as in training."""
    import torch

    from gpt2tune.data.load import load_qa_data
    from gpt2tune.model import load_model_and_tokenizer
    from gpt2tune.data.prep import IGNORE_INDEX, PackedCollator, prepare_datasets, split_frame

    model, tokenizer = load_model_and_tokenizer(str(model_dir))
    model.eval()
    train_frame, eval_frame = split_frame(load_qa_data(config.csv).frame, config.eval_fraction, config.seed)
    _, eval_set, _ = prepare_datasets(train_frame, eval_frame, tokenizer, config.max_length, True, True)
    collate = PackedCollator(tokenizer.pad_token_id)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(eval_set), 8):
            batch = collate(list(eval_set.select(range(start, min(start + 8, len(eval_set))))))
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"]).logits
            targets = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(),
                                                       ignore_index=IGNORE_INDEX, reduction="sum")
            total += losses.item()
            count += int((targets != IGNORE_INDEX).sum())
    return total / count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=str(ROOT / "assets" / "sample_qa.csv"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--sizes", default="tiny,small")
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args(argv)

    from gpt2tune.config import TuneConfig
    from gpt2tune.model import init_tiny
    from gpt2tune.training.train import train

    results = {}
    with tempfile.TemporaryDirectory() as work:
        for size in args.sizes.split(","):
            base = init_tiny(Path(work) / f"base-{size}", seed=0, **SIZES[size])
            for answers_only in (True, False):
                config = TuneConfig(csv=args.csv, base_model=str(base), output_dir=str(Path(work) / f"{size}-{answers_only}"),
                                    max_steps=args.steps, learning_rate=args.lr, batch_size=8, max_length=256,
                                    eval_steps=0, save_steps=0, warmup_ratio=0.05, train_on_answers_only=answers_only,
                                    **({"eval_answer_samples": 0} if "eval_answer_samples" in TuneConfig.__dataclass_fields__ else {}))
                train(config)
                loss = answer_loss(Path(config.output_dir), config)
                results[f"{size} answers_only={answers_only}"] = loss
                print(f"{size:>5} answers_only={answers_only!s:5}: eval loss on answer tokens {loss:.4f}", flush=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
