"""Publish a run's demo as a Gradio Space: the model first (hub.push), then the demo folder
(`build`) into a Space that loads the model by its Hub id.

The token rules are push's: the token goes to `HfApi` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpt2tune.hub.push import PRIVATE_DEFAULT
from gpt2tune.references import validate_repo_id

COMMIT_MESSAGE = "Upload a demo of a fine-tuned GPT-2 (gpt2tune)"


@dataclass
class PublishedDemo:
    space_url: str
    model_url: str
    folder: Path
    note: str = ""  # what the owner still has to do, in one line (e.g. a private model needs a Space secret)


def default_model_repo(space_repo: str, run: str | Path) -> str:
    """The model's repo beside the Space: same owner, named after the run."""
    return validate_repo_id(f"{space_repo.split('/')[0]}/{Path(run).name}")


def push_demo(run: str | Path, output_dir: str | Path, repo_id: str, token: str | None = None,
              private: bool = PRIVATE_DEFAULT, model_repo: str | None = None, nearest: bool = False) -> PublishedDemo:
    """Build the demo of `run` into `output_dir`, push the model to `model_repo` (its files are only sent
    when the Hub does not have them yet), then create the Space `repo_id` and upload the demo folder."""
    from huggingface_hub import HfApi

    from gpt2tune.demo.build import LOCAL_ONLY, build_demo
    from gpt2tune.hub.push import _hub_failure, push_to_hub, resolve_token

    repo_id = validate_repo_id(repo_id)
    model_repo = validate_repo_id(model_repo) if model_repo else default_model_repo(repo_id, run)
    if model_repo == repo_id:
        raise ValueError(f"the model and its demo need two repos: {repo_id!r} names both (--model-repo-id)")
    token = resolve_token(token)  # before anything is built or sent
    demo = build_demo(run, output_dir, nearest=nearest, model_repo=model_repo)
    if demo.base_model and Path(demo.base_model).exists():
        raise ValueError(f"run {demo.run.name!r} holds LoRA adapters on a local base model ({Path(demo.base_model).name})"
                         ", which a Space cannot load: train it with merged weights (--merge-lora) or from a Hub model")
    # Unchanged files are not uploaded again (huggingface_hub compares their hashes with the Hub's):
    # a model pushed before costs a comparison, not an upload.
    model_url = push_to_hub(demo.weights, model_repo, token=token, private=private)
    api = HfApi(token=token)
    try:
        space_url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(demo.folder),
                          commit_message=COMMIT_MESSAGE, ignore_patterns=LOCAL_ONLY)
    except Exception as error:
        raise _hub_failure(error, repo_id) from None
    note = (f"the model repo {model_repo} is private: the Space loads it only with a read token as its HF_TOKEN "
            "secret (Space settings), or once the model is public") if private else ""
    return PublishedDemo(str(space_url), str(model_url), demo.folder, note)
