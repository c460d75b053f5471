"""Write a demo Space folder for one trained run: `gpt2tune demo --model runs/faq --output-dir demo/faq`.

The folder holds:
  app.py             the chat page (template_app.py, as it is)
  demo.json          what the page answers with, from the run: model, trained length, decoding,
                     example questions of the eval split, the card's summary
  requirements.txt   only what answering needs on a CPU: torch, transformers, gradio (peft for adapters)
  README.md          the Space's front matter (sdk gradio, app_file, models, short_description, license)
  vendored/          gpt2tune's prompt template and nearest-example code, copied as they are
  model/, base/      the weights (base/: a LoRA run's local base model); a push leaves them out and
                     the Space loads the model by its Hub id
  nearest_index.npz  with `nearest`: the training questions and answers, to show the closest one
"""

from __future__ import annotations

import importlib.metadata
import shutil
from dataclasses import dataclass
from pathlib import Path

from gpt2tune.config import GenerationSettings
from gpt2tune.runs import artifacts

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "template_app.py"
DATA = HERE.parent / "data"
VENDORED_DIR = "vendored"
VENDORED = ("prompt.py", "textnorm.py", "nearest.py")  # from gpt2tune/data: standard library and numpy only
SETTINGS_FILE = "demo.json"
MODEL_DIR, BASE_DIR = "model", "base"
LOCAL_ONLY = [f"{MODEL_DIR}/*", f"{BASE_DIR}/*"]  # what a push leaves out: the Space loads the model by Hub id
EXAMPLES = 5
LICENSE = "mit"  # the card's
# the files that load a model or an adapter, and its tokenizer; not the run's record, data or checkpoints
MODEL_FILES = ("config.json", "generation_config.json", artifacts.WEIGHTS_FILE, artifacts.ADAPTER_CONFIG_FILE,
               artifacts.ADAPTER_WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
               "special_tokens_map.json", "added_tokens.json", "chat_template.jinja")
SHORT_DESCRIPTION_LIMIT = 60  # the Hub's limit for a Space's short_description


@dataclass
class DemoFolder:
    folder: Path
    run: Path  # the run folder it was built from
    weights: Path  # the folder its model files came from: the run, or its merged/ weights
    base_model: str | None  # a LoRA adapter's base model (a Hub id, or a local folder copied to base/)


def build_demo(model: str | Path, output_dir: str | Path, nearest: bool = False,
               model_repo: str | None = None) -> DemoFolder:
    """Write the demo folder of the run in `model` into `output_dir` (a demo folder there is replaced)."""
    run = Path(model)
    if not (run / artifacts.CONFIG_FILE).is_file():
        raise ValueError(f"--model {str(model)!r} is not a run folder (no {artifacts.CONFIG_FILE}): a demo is "
                         "built from the output folder of a finished run")
    if not artifacts.has_model(run):
        raise ValueError(f"run {run.name!r} has no saved model yet (still training, or it failed)")
    weights, base_model = _weights(run)
    folder = _fresh_folder(Path(output_dir))
    _copy_model(weights, folder / MODEL_DIR)
    base_ref = base_model
    if base_model and Path(base_model).is_dir():
        _copy_model(Path(base_model), folder / BASE_DIR)
        base_ref = BASE_DIR
    (folder / VENDORED_DIR).mkdir()
    (folder / VENDORED_DIR / "__init__.py").write_text('"""Copied from gpt2tune by `gpt2tune demo`."""\n')
    for name in VENDORED:
        shutil.copyfile(DATA / name, folder / VENDORED_DIR / name)
    shutil.copyfile(TEMPLATE, folder / "app.py")
    if nearest:
        from gpt2tune.evaluation.nearest_example import run_index

        index, why = run_index(str(run))
        if index is None:
            raise ValueError(f"no nearest training example for run {run.name!r}: {why}")
        from gpt2tune.data.nearest import INDEX_FILE

        index.save(folder / INDEX_FILE)
    settings = _settings(run, weights, base_ref, model_repo, nearest)
    artifacts.write_json(folder / SETTINGS_FILE, settings)
    (folder / "requirements.txt").write_text(requirements(adapter=base_model is not None, nearest=nearest))
    (folder / "README.md").write_text(space_readme(settings, model_repo, base_model), encoding="utf-8")
    return DemoFolder(folder, run, weights, base_model)


def _weights(run: Path) -> tuple[Path, str | None]:
    """(the folder to take the model from, a LoRA adapter's base model or None). Merged full weights,
    when the run saved them, load without peft and without a base model."""
    adapter = artifacts.read_json(run / artifacts.ADAPTER_CONFIG_FILE)
    if adapter is None:
        return run, None
    merged = run / artifacts.MERGED_DIR
    if artifacts.has_model(merged):
        return merged, None
    return run, str(adapter.get("base_model_name_or_path") or "")


def _fresh_folder(folder: Path) -> Path:
    """An empty folder: a demo folder written before is replaced, anything else there is refused."""
    if folder.exists():
        if not (folder / SETTINGS_FILE).is_file() and any(folder.iterdir()):
            raise ValueError(f"--output-dir {folder} is not empty and is not a demo folder: choose another folder")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _copy_model(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)


def _settings(run: Path, weights: Path, base_ref: str | None, model_repo: str | None, nearest: bool) -> dict:
    from gpt2tune.evaluation.provenance import run_record
    from gpt2tune.hub.card import card_summary

    record = run_record(str(run))
    # the length the run trained with: a prompt and its answer never exceeded it in training
    length = record.max_length or int((artifacts.read_json(weights / "config.json", {}) or {}).get("n_positions", 1024))
    return {
        "title": run.name,
        "model": MODEL_DIR,
        "model_repo": model_repo,
        "base_model": base_ref,
        "max_length": length,
        "max_new_tokens": length,  # the length bounds it first; lower it here for shorter answers
        "repetition_penalty": GenerationSettings.repetition_penalty,  # greedy, as `gpt2tune generate` by default
        "examples": example_questions(record),
        "summary": card_summary(run),
        "nearest": nearest,
    }


def example_questions(record) -> list[str]:
    """A few questions of the run's eval split: the sample answers' (the eval questions it answered
    after training), else the split rebuilt from the run's file."""
    from gpt2tune.hub.card import SAMPLES_FILE

    samples = artifacts.read_json(record.folder / SAMPLES_FILE, []) or []
    questions = [s["question"] for s in samples if s.get("question")]
    if not questions:
        from gpt2tune.evaluation.provenance import run_split

        split = run_split(record)
        questions = split[1]["question"].tolist() if split is not None else []
    return [" ".join(q.split()) for q in questions[:EXAMPLES]]


def _installed(name: str) -> str:
    """The version installed here without its local label (2.13.0+cpu is PyPI's 2.13.0, CPU build)."""
    return importlib.metadata.version(name).split("+")[0]


def requirements(adapter: bool, nearest: bool) -> str:
    """Pinned to the versions the demo was built and checked with; torch from PyTorch's CPU index
    (a free Space has no GPU, and PyPI's Linux wheel brings gigabytes of CUDA libraries)."""
    lines = ["# What the demo needs to answer questions on a CPU (written by gpt2tune demo).",
             "--extra-index-url https://download.pytorch.org/whl/cpu",
             f"torch=={_installed('torch')}", f"transformers=={_installed('transformers')}",
             f"gradio=={_installed('gradio')}"]
    if adapter:
        lines.append(f"peft=={_installed('peft')}")  # LoRA adapters on the base model
    if nearest:
        lines.append(f"numpy=={_installed('numpy')}")  # the nearest-example index
    return "\n".join(lines) + "\n"


def short_description(title: str) -> str:
    text = f"{title}: questions answered by a fine-tuned GPT-2"
    return text if len(text) <= SHORT_DESCRIPTION_LIMIT else "Questions answered by a fine-tuned GPT-2"


def space_readme(settings: dict, model_repo: str | None, base_model: str | None) -> str:
    from huggingface_hub import SpaceCardData

    from gpt2tune.references import is_repo_id

    models = [m for m in (model_repo, base_model) if m and is_repo_id(m) and not Path(m).exists()]
    data = SpaceCardData(title=settings["title"], sdk="gradio", sdk_version=_installed("gradio"), app_file="app.py",
                         license=LICENSE, models=models or None, emoji="💬", colorFrom="blue", colorTo="indigo",
                         pinned=False, short_description=short_description(settings["title"]))
    where = f"[{model_repo}](https://huggingface.co/{model_repo})" if model_repo else "the folder `model/`"
    return "\n".join([
        "---", data.to_yaml(), "---", "",
        f"# {settings['title']}", "",
        f"A chat page for one GPT-2 fine-tuned with gpt2tune on question/answer pairs; the model is {where}.",
        "Answers are greedy, as in training's template `Question: …` / `Answer:`, and stop at `<|endoftext|>`.",
        "", "Run it locally: `pip install -r requirements.txt && python app.py`.", "",
    ])
