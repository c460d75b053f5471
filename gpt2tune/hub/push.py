"""Publish an output folder to the Hugging Face Hub.

The token comes from an argument, `HF_TOKEN`, or huggingface_hub's cached login. It is passed to
`HfApi` and nowhere else: never printed, logged, written to a file or put in an error message.
"""

from __future__ import annotations

from pathlib import Path

from gpt2tune.references import validate_repo_id

UPLOAD_IGNORE = ["checkpoints/*", ".staging/*", "*.tmp", ".write-test", "training_args.bin",
                 # the run's record stays on the server: the training data's copy, server paths, its pid
                 "data/*", "run.json", "events.jsonl", "visitor.json",
                 # the training questions and answers themselves: a demo Space publishes them only when asked
                 "nearest_index.npz",
                 # a LoRA run's merged full weights are pushed on their own (push the merged folder);
                 # the local Trackio database stays (TensorBoard event files do go: the Hub charts them)
                 "merged/*", "logs/trackio/*"]
PRIVATE_DEFAULT = True  # a model trained on someone's data stays theirs until they choose to publish it
COMMIT_MESSAGE = "Upload fine-tuned GPT-2 (gpt2tune)"


def resolve_token(token: str | None = None) -> str:
    """Argument, then HF_TOKEN / the Space secret, then the cached `hf auth login`."""
    from huggingface_hub import get_token

    token = (token or "").strip() or get_token()
    if not token:
        raise ValueError(
            "no Hugging Face token: pass one, set HF_TOKEN (a Space secret works too), or run `hf auth login`"
        )
    return token


def push_to_hub(model_dir: str | Path, repo_id: str, token: str | None = None, private: bool = PRIVATE_DEFAULT,
                commit_message: str = COMMIT_MESSAGE) -> str:
    """Create the repo if needed and upload the model, tokenizer, metrics and card. Returns its URL.

    To prove the Hub copy is the model trained, call `hub.roundtrip.verify_roundtrip` afterwards.
    """
    from huggingface_hub import HfApi

    from gpt2tune.hub.card import CARD_FILE, is_generated_card, write_model_card
    from gpt2tune.runs import artifacts

    model_dir = Path(model_dir)
    repo_id = validate_repo_id(repo_id)
    full = (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors"))
    if not full and not artifacts.has_model(model_dir):  # a LoRA run: adapters and their config
        raise ValueError(f"{model_dir} holds no trained model (config.json and *.safetensors expected, "
                         "or a LoRA run's adapter_config.json and adapter_model.safetensors)")
    token = resolve_token(token)
    card = model_dir / CARD_FILE
    before = card.read_bytes() if card.is_file() else None
    if before is None or is_generated_card(card):
        write_model_card(model_dir, repo_id)  # ours: rewritten so its title and snippet name the repo
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(model_dir),
            commit_message=commit_message,
            ignore_patterns=UPLOAD_IGNORE,
        )
    except Exception as error:
        _restore(card, before)  # a failed push changes nothing: the card names the repo only once it is there
        raise _hub_failure(error, repo_id) from None
    return str(url)


def _restore(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


def _hub_failure(error: Exception, repo_id: str) -> ValueError:
    """A wrong token or repo id is a setting to fix (ValueError); anything else, such as no network,
    a server error or rate limiting, is a failure (NetworkError: the CLI exits 1)."""
    from gpt2tune.errors import NetworkError

    status = getattr(getattr(error, "response", None), "status_code", None)
    kind = ValueError if status in (401, 403, 404, 409) else NetworkError
    return kind(explain_hub_error(error, repo_id))


def explain_hub_error(error: Exception, repo_id: str) -> str:
    """One line a user can act on; built from the status code, never from the raw text (which
    could echo request headers)."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    reasons = {
        401: "the Hub rejected the token (401): check it is valid and has write access",
        403: f"the token may not write to {repo_id!r} (403): use a write token for that user or organisation",
        404: f"{repo_id!r} was not found (404): check the user/organisation name",
        409: f"{repo_id!r} conflicts with an existing repo (409)",
        429: "the Hub is rate limiting requests (429): wait a minute and retry",
    }
    if status in reasons:
        return f"push to {repo_id} failed: {reasons[status]}"
    if status:
        return f"push to {repo_id} failed: the Hub answered HTTP {status}"
    return f"push to {repo_id} failed: could not reach the Hugging Face Hub ({type(error).__name__})"
