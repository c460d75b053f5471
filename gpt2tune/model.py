"""Load a GPT-2 and its tokenizer (Hub id or folder), check their vocabularies agree, make a tiny one."""

from __future__ import annotations

import logging
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

from gpt2tune.errors import first_line
from gpt2tune.paths import TOKENIZER_DIR

log = logging.getLogger(__name__)

TINY_MODEL_NOTE = (
    "This is a tiny, randomly initialised GPT-2 (untrained): it exists so gpt2tune runs offline "
    "in tests and demos. Its answers are noise until it has been fine-tuned, and even then it is small."
)


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    name_or_path = locate_model(name_or_path)
    try:
        # trust_remote_code=False, not the default None: None would offer an interactive prompt to
        # run the repo's own Python code when a tokenizer config asks for it.
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"could not load a tokenizer from {name_or_path!r}: {first_line(error)}") from None
    if tokenizer.pad_token is None:
        # GPT-2 has no pad token. Reusing EOS is safe here because padding is masked by our own
        # attention masks and labels, never by comparing ids with pad_token_id (which would also
        # hide the real EOS label and leave a model that never learns to stop).
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str, allow_pickle: bool = False, dropout: float | None = None):
    """Load GPT-2 weights from safetensors; pickle (.bin) only when explicitly allowed.

    A LoRA adapter (folder or Hub id with adapter_config.json) loads its base model first, by
    the same rules, then the adapter on top."""
    from transformers import AutoModelForCausalLM

    overrides = {}
    if dropout is not None:
        overrides = {"resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": dropout}
    name_or_path = locate_model(name_or_path)
    adapter = adapter_config(name_or_path)
    if adapter is not None:
        return _load_with_adapter(name_or_path, adapter, allow_pickle, dropout)
    _refuse_pickle_only_folder(name_or_path, allow_pickle)
    try:
        return AutoModelForCausalLM.from_pretrained(
            name_or_path,
            use_safetensors=None if allow_pickle else True,
            trust_remote_code=False,
            **overrides,
        )
    except pickle.UnpicklingError:
        # Even when allowed, pickle weights load with torch's weights_only: anything but tensors is refused.
        raise ValueError(
            f"could not load model {name_or_path!r}: its pickle (.bin) weights hold objects other than "
            "tensors (possibly code), so they were refused; convert the model to safetensors"
        ) from None
    except (OSError, ValueError, EnvironmentError) as error:
        raise ValueError(f"could not load model {name_or_path!r}: {first_line(error)}") from None


def adapter_config(name_or_path: str) -> dict | None:
    """The adapter_config.json of a LoRA adapter (folder or Hub id), or None for a full model."""
    import json

    folder = Path(name_or_path)
    if folder.is_dir():
        path = folder / "adapter_config.json"
        return json.loads(path.read_text()) if path.is_file() else None
    from transformers.utils import find_adapter_config_file

    try:
        path = find_adapter_config_file(name_or_path)  # one request; a missing file is None
    except (OSError, ValueError):
        return None  # the full-model load that follows reports what is wrong
    return json.loads(Path(path).read_text()) if path else None


def _load_with_adapter(name_or_path: str, adapter: dict, allow_pickle: bool, dropout: float | None):
    base = adapter.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{name_or_path!r} is a LoRA adapter whose adapter_config.json names no base model")
    folder = Path(name_or_path)
    if folder.is_dir() and not (folder / "adapter_model.safetensors").exists() and not allow_pickle:
        raise ValueError(f"{name_or_path!r} has no adapter_model.safetensors; pickle (.bin) adapter weights load "
                         "only when allowed (--allow-pickle, allow_pickle=True) for a source you trust")
    model = load_model(base, allow_pickle=allow_pickle, dropout=dropout)
    try:
        # transformers' own peft integration: the base model gains the adapter layers in place.
        model.load_adapter(name_or_path, adapter_name="default")
    except (OSError, ValueError, RuntimeError) as error:
        raise ValueError(f"could not load the LoRA adapter {name_or_path!r} onto {base!r}: "
                         f"{first_line(error)}") from None
    return model


def locate_model(name_or_path: str) -> str:
    """A local folder as is; a Hub id as is when the Hub answers, else its cached copy.

    Failing fast matters: offline, transformers retries a dead network for about 30 s per file.
    """
    _refuse_missing_folder(name_or_path)
    if Path(name_or_path).is_dir() or _hub_reachable():
        return name_or_path
    cached = _cached_snapshot(name_or_path)
    if cached is None:
        raise ValueError(
            f"could not load {name_or_path!r}: the Hugging Face Hub is unreachable and the model is not "
            "in the local cache; connect to the internet or give a local model folder"
        )
    return cached


def _refuse_missing_folder(name_or_path: str) -> None:
    """A path that is not there gets a plain "does not exist", not a Hub repo-id error."""
    looks_like_path = (Path(name_or_path).is_absolute() or name_or_path.startswith((".", "~"))
                       or name_or_path.count("/") > 1 or "\\" in name_or_path)
    if looks_like_path and not Path(name_or_path).is_dir():
        raise ValueError(f"model folder {name_or_path!r} does not exist")


def _refuse_pickle_only_folder(name_or_path: str, allow_pickle: bool) -> None:
    folder = Path(name_or_path)
    _refuse_missing_folder(name_or_path)
    if not folder.is_dir():
        return  # a Hub id
    if not (folder / "config.json").exists():
        raise ValueError(f"{name_or_path!r} is not a model folder: it has no config.json")
    has_safetensors = any(folder.glob("*.safetensors"))
    has_pickle = any(folder.glob("*.bin"))
    if has_pickle and not has_safetensors and not allow_pickle:
        raise ValueError(
            f"{name_or_path!r} holds only pickle (.bin) weights, which can run code when loaded; "
            "convert them to safetensors, or allow them (--allow-pickle, allow_pickle=True) if you trust the source"
        )


def load_model_and_tokenizer(name_or_path: str, allow_pickle: bool = False, dropout: float | None = None):
    tokenizer = load_tokenizer(name_or_path)
    model = load_model(name_or_path, allow_pickle=allow_pickle, dropout=dropout)
    return model, tokenizer


@dataclass
class VocabReport:
    tokenizer_size: int
    embedding_rows_before: int
    embedding_rows: int
    eos_token_id: int | None
    pad_token_id: int | None
    bos_token_id: int | None
    pad_is_eos: bool
    action: str

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"tokenizer: {self.tokenizer_size} tokens; model embedding rows: {self.embedding_rows_before}"
            f"{'' if self.embedding_rows == self.embedding_rows_before else f' → {self.embedding_rows}'}\n"
            f"special ids: eos={self.eos_token_id} bos={self.bos_token_id} pad={self.pad_token_id}"
            f"{' (pad reuses eos; padding is masked by attention, EOS stays a learned label)' if self.pad_is_eos else ''}\n"
            f"{self.action}"
        )


def check_and_fix_vocabulary(model, tokenizer) -> VocabReport:
    """Make tokenizer and model agree: a tokenizer bigger than the embedding matrix would index
    out of range, so the embeddings grow; spare rows (some checkpoints pad the vocab) are harmless."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows_before = model.get_input_embeddings().weight.shape[0]
    size = len(tokenizer)
    if size > rows_before:
        model.resize_token_embeddings(size)
        action = f"fixed: resized the model's embeddings from {rows_before} to {size} rows"
    elif size < rows_before:
        action = f"ok: the model has {rows_before - size} spare embedding rows the tokenizer never uses"
    else:
        action = "ok: sizes match"
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return VocabReport(
        tokenizer_size=size,
        embedding_rows_before=rows_before,
        embedding_rows=model.get_input_embeddings().weight.shape[0],
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        pad_is_eos=tokenizer.pad_token_id == tokenizer.eos_token_id,
        action=action,
    )


def init_tiny(output_dir: str | Path, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, seed: int = 0) -> Path:
    """Write a tiny randomly initialised GPT-2 with the real GPT-2 tokenizer (bundled, offline)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    output_dir = Path(output_dir)
    tokenizer = load_tokenizer(str(TOKENIZER_DIR))
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    (output_dir / "README.md").write_text(f"# Tiny GPT-2 (untrained)\n\n{TINY_MODEL_NOTE}\n")
    return output_dir


def tiny_model_dir() -> Path:
    """The app's offline base model: created once under the working folder."""
    from gpt2tune.paths import work_dir

    folder = work_dir() / "tiny-gpt2"
    if not (folder / "model.safetensors").exists():
        init_tiny(folder)
    return folder


def resolve_base_model(name_or_path: str, fallback_to_tiny: bool) -> tuple[str, str | None]:
    """The model to load, and a warning when the Hub is unreachable and something else stands in:
    the cached copy of the Hub model if there is one, else the offline tiny model."""
    if not fallback_to_tiny or Path(name_or_path).is_dir() or _hub_reachable():
        return name_or_path, None
    cached = _cached_snapshot(name_or_path)
    if cached:
        return cached, f"the Hugging Face Hub is unreachable; using the cached copy of {name_or_path!r}"
    tiny = tiny_model_dir()
    return str(tiny), (
        f"could not reach {name_or_path!r} on the Hugging Face Hub (offline?); using the offline tiny "
        f"model at {tiny} instead. {TINY_MODEL_NOTE}"
    )


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """One TCP connection instead of a download: huggingface_hub retries a dead network for ~30 s."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout_s).close()
        return True
    except OSError:
        return False


def _cached_snapshot(repo_id: str) -> str | None:
    from huggingface_hub import hf_hub_download

    for filename in ("config.json", "adapter_config.json"):  # a full model, or a LoRA adapter
        try:
            return str(Path(hf_hub_download(repo_id, filename, local_files_only=True)).parent)
        except Exception:  # not cached, or not a valid repo id: nothing to stand in
            continue
    return None


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
