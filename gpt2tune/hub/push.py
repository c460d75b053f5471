"""Publish an output folder to the Hugging Face Hub.

The token comes from an argument, `HF_TOKEN`, or huggingface_hub's cached login. It is passed to
`HfApi` and nowhere else: never printed, logged, written to a file or put in an error message.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
# merged/: a LoRA run's merged full weights are pushed on their own (push the merged folder);
# logs/trackio/: the local Trackio database (TensorBoard event files do go: the Hub charts them).
UPLOAD_IGNORE = ["checkpoints/*", ".staging/*", "*.tmp", ".write-test", "training_args.bin", "merged/*",
                 "logs/trackio/*"]


def validate_repo_id(repo_id: str) -> str:
    repo_id = (repo_id or "").strip()
    if not REPO_ID_PATTERN.match(repo_id) or ".." in repo_id or repo_id.endswith((".git", ".")):
        raise ValueError(f"repo id {repo_id!r} is not of the form user/name (letters, digits, '-', '_', '.')")
    return repo_id


def resolve_token(token: str | None = None) -> str:
    """Argument, then HF_TOKEN / the Space secret, then the cached `hf auth login`."""
    from huggingface_hub import get_token

    token = (token or "").strip() or get_token()
    if not token:
        raise ValueError(
            "no Hugging Face token: pass one, set HF_TOKEN (a Space secret works too), or run `hf auth login`"
        )
    return token


def push_to_hub(model_dir: str | Path, repo_id: str, token: str | None = None, private: bool = False,
                commit_message: str = "Upload fine-tuned GPT-2 (gpt2tune)", verify: bool = False):
    """Create the repo if needed and upload the model, tokenizer, metrics and card. Returns its URL.

    With `verify=True`, the model is then downloaded back into a fresh cache and compared with the
    local one (weights hash and greedy answers); returns `(url, roundtrip.RoundTripReport)`.
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
    if not (model_dir / CARD_FILE).exists() or is_generated_card(model_dir / CARD_FILE):
        write_model_card(model_dir, repo_id)  # ours: rewritten so its title and snippet name the repo
    token = resolve_token(token)
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
        raise ValueError(explain_hub_error(error, repo_id)) from None
    if verify:
        from gpt2tune.hub.roundtrip import verify_roundtrip

        return str(url), verify_roundtrip(model_dir, repo_id, token=token)
    return str(url)


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
