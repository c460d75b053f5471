"""After a push, prove the Hub copy is the model trained: same weights, same tokenizer, same answers.

The Hub copy is downloaded into a fresh, temporary cache (never one a previous download filled), so
what is checked is what a stranger would get from the repo id. Weights are compared by a SHA-256
over every tensor of the state dict, in name order, with dtype and shape.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gpt2tune.runs import artifacts
from gpt2tune.errors import first_line

DEFAULT_QUESTIONS = ("What is the capital of France?", "How many days are in a week?")
QUESTIONS_CHECKED = 3
ANSWER_TOKENS = 32
TOKENIZER_PROBE = "Question: Does the tokenizer match? Ünïcödé, numbers 12345 and emoji 🙂\nAnswer:"


@dataclass
class RoundTripReport:
    repo_id: str
    ok: bool
    local_hash: str
    remote_hash: str
    answers: list[dict] = field(default_factory=list)  # {"question", "local", "remote", "match"}
    mismatches: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        head = (f"round trip {'OK' if self.ok else 'FAILED'}: {self.repo_id} "
                f"{'matches' if self.ok else 'does not match'} the local model")
        lines = [head, f"weights sha256: local {self.local_hash[:16]}…, Hub {self.remote_hash[:16]}…"]
        lines += [f"{'same' if a['match'] else 'DIFFERENT'} answer to {a['question']!r}: {a['remote']!r}"
                  for a in self.answers]
        lines += [f"mismatch: {m}" for m in self.mismatches]
        return "\n".join(lines)


def state_dict_hash(model) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of every tensor, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # Viewing as bytes works for every dtype (numpy has no bfloat16).
        digest.update(tensor.reshape(-1).view(_uint8()).numpy().tobytes())
    return digest.hexdigest()


def verify_roundtrip(model_dir: str | Path, repo_id: str, token: str | None = None, revision: str | None = None,
                     questions: list[str] | None = None, on_event=None) -> RoundTripReport:
    """Download `repo_id` into a fresh cache and compare it with the model in `model_dir`.

    `on_event` hears each stage (Status events), as `train`'s listener does."""
    from gpt2tune import events
    from gpt2tune.model import load_model_and_tokenizer
    from gpt2tune.references import validate_repo_id

    status = lambda message: (on_event or events.ignore)(events.Status(message))  # noqa: E731
    repo_id = validate_repo_id(repo_id)
    status(f"loading the local model from {model_dir}")
    local = load_model_and_tokenizer(str(model_dir))
    questions = list(questions or _questions_for(Path(model_dir)))
    status(f"downloading {repo_id} from the Hub into a fresh cache")
    with tempfile.TemporaryDirectory(prefix="gpt2tune-roundtrip-") as cache:
        remote = _load_from_hub(repo_id, cache, token, revision)
    status(f"comparing weights, tokenizers and the answers to {len(questions)} question(s)")
    return compare_models(repo_id, local, remote, questions)


def compare_models(repo_id: str, local, remote, questions: list[str]) -> RoundTripReport:
    """Weights hash, tokenizer and greedy answers of two (model, tokenizer) pairs."""
    from gpt2tune.evaluation.evaluate import answer_many, greedy_settings

    (local_model, local_tokenizer), (remote_model, remote_tokenizer) = local, remote
    local_hash, remote_hash = state_dict_hash(local_model), state_dict_hash(remote_model)
    mismatches = []
    if local_hash != remote_hash:
        mismatches.append(f"weights differ: {_differing_tensors(local_model, remote_model)}")
    if local_tokenizer(TOKENIZER_PROBE)["input_ids"] != remote_tokenizer(TOKENIZER_PROBE)["input_ids"]:
        mismatches.append("the tokenizers split the same text differently")
    settings = greedy_settings(ANSWER_TOKENS)
    local_answers = answer_many(local_model, local_tokenizer, questions, settings)
    remote_answers = answer_many(remote_model, remote_tokenizer, questions, settings)
    answers = [{"question": q, "local": a, "remote": b, "match": a == b}
               for q, a, b in zip(questions, local_answers, remote_answers)]
    mismatches += [f"answer to {a['question']!r} differs: local {a['local']!r}, Hub {a['remote']!r}"
                   for a in answers if not a["match"]]
    return RoundTripReport(repo_id=repo_id, ok=not mismatches, local_hash=local_hash, remote_hash=remote_hash,
                           answers=answers, mismatches=mismatches)


def _load_from_hub(repo_id: str, cache_dir: str, token: str | None, revision: str | None):
    """The Hub copy, downloaded into `cache_dir` (fresh: never what an earlier download left)."""
    from gpt2tune.errors import NetworkError
    from gpt2tune.model import load_model_and_tokenizer
    from gpt2tune.model import hub_unreachable_reason

    # Fail at once, not after transformers' retries, and in the same words as every other Hub load.
    if hub_unreachable_reason() is not None:
        raise NetworkError(f"could not load {repo_id!r} back from the Hub: the Hugging Face Hub is unreachable; "
                           "connect to the internet and retry")
    try:
        model, tokenizer = load_model_and_tokenizer(repo_id, cache_dir=cache_dir, token=token or None,
                                                    revision=revision)
    except Exception as error:  # network, missing files, auth: one line, never the raw response
        raise ValueError(f"could not load {repo_id} back from the Hub: {type(error).__name__}: "
                         f"{first_line(error, limit=200)}") from None
    return model.eval(), tokenizer


def _questions_for(model_dir: Path) -> list[str]:
    """The run's probe questions, else its sample eval questions, else two generic ones."""
    from gpt2tune.runs.resolved import load_run

    run = load_run(model_dir)
    if run is not None and run.settings.probe_questions:
        return run.settings.probe_questions[:QUESTIONS_CHECKED]
    from gpt2tune.hub.card import SAMPLES_FILE

    samples = artifacts.read_json(model_dir / SAMPLES_FILE, []) or []
    return [s["question"] for s in samples[:QUESTIONS_CHECKED]] or list(DEFAULT_QUESTIONS)


def _differing_tensors(first, second, shown: int = 3) -> str:
    a, b = first.state_dict(), second.state_dict()
    names = sorted(set(a) ^ set(b)) + sorted(
        n for n in set(a) & set(b) if a[n].shape != b[n].shape or a[n].dtype != b[n].dtype or not a[n].equal(b[n])
    )
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} tensor(s), e.g. {', '.join(names[:shown])}{more}"


def _uint8():
    import torch

    return torch.uint8
