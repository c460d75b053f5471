"""Load a GPT-2 and its tokenizer (Hub id or folder), check their vocabularies agree, make a tiny one."""

from __future__ import annotations

import logging
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

from gpt2tune.errors import NetworkError, first_line
from gpt2tune.paths import TOKENIZER_DIR
from gpt2tune.references import looks_like_path

log = logging.getLogger(__name__)

TINY_MODEL_NOTE = (
    "This is a tiny, randomly initialised GPT-2 (untrained): it exists so gpt2tune runs offline "
    "in tests and demos. Its answers are noise until it has been fine-tuned, and even then it is small."
)


def load_tokenizer(name_or_path: str, **hub_options):
    """hub_options: cache_dir, token, revision, passed to `from_pretrained` for a Hub id."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoTokenizer

    name_or_path = locate_model(name_or_path)
    _refuse_folder_without_tokenizer(name_or_path)
    try:
        # trust_remote_code=False, not the default None: None would offer an interactive prompt to
        # run the repo's own Python code when a tokenizer config asks for it.
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False, **hub_options)
    except StrictDataclassError as error:
        raise _invalid_config(name_or_path, error) from None
    except (OSError, ValueError) as error:
        raise ValueError(f"could not load a tokenizer from {name_or_path!r}: {first_line(error)}") from None
    if tokenizer.pad_token is None:
        # GPT-2 has no pad token. Reusing EOS is safe here because padding is masked by our own
        # attention masks and labels, never by comparing ids with pad_token_id (which would also
        # hide the real EOS label and leave a model that never learns to stop).
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str, allow_pickle: bool = False, dropout: float | None = None, **hub_options):
    """Load GPT-2 weights from safetensors; pickle (.bin) only when explicitly allowed.

    hub_options: cache_dir, token, revision, passed to `from_pretrained` for a Hub id. A LoRA adapter
    (folder or Hub id with adapter_config.json) loads its base model first, by the same rules, then
    the adapter on top."""
    from huggingface_hub.errors import StrictDataclassError
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
            **hub_options,
            **overrides,
        )
    except pickle.UnpicklingError:
        # Even when allowed, pickle weights load with torch's weights_only: anything but tensors is refused.
        raise ValueError(
            f"could not load model {name_or_path!r}: its pickle (.bin) weights hold objects other than "
            "tensors (possibly code), so they were refused; convert the model to safetensors"
        ) from None
    except StrictDataclassError as error:
        raise _invalid_config(name_or_path, error) from None
    except (OSError, ValueError, EnvironmentError) as error:
        raise ValueError(f"could not load model {name_or_path!r}: {first_line(error)}") from None


# Files any one of which makes a folder loadable as a tokenizer (fast tokenizer, or GPT-2's BPE pair).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


def _refuse_folder_without_tokenizer(name_or_path: str) -> None:
    """A local folder with no tokenizer files gets a sentence, not transformers' "from one of:" list."""
    folder = Path(name_or_path)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(f"{name_or_path!r} is not a model folder: it has no tokenizer files "
                         f"({' or '.join(TOKENIZER_FILES)}); give the output folder of a run or a Hub id")


def _invalid_config(name_or_path: str, error: Exception) -> ValueError:
    """transformers validates config.json fields strictly (e.g. n_layer: "abc"): name the file, in one line."""
    where = Path(name_or_path) / "config.json" if Path(name_or_path).is_dir() else f"config.json of {name_or_path!r}"
    detail = " ".join(str(error).split())  # its message spans lines: field, then the cause
    return ValueError(f"invalid value in {where}: {detail[:300]}")
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


def context_length(config) -> int:
    """A model configuration's context in tokens."""
    return int(getattr(config, "n_positions", None) or config.max_position_embeddings)


def model_context(name_or_path: str, allow_pickle: bool = False) -> int:
    """The model's context in tokens, from its configuration alone (see model_config)."""
    return context_length(model_config(name_or_path, allow_pickle))


def model_config(name_or_path: str, allow_pickle: bool = False):
    """The model's configuration (a LoRA adapter: its base model's), from config.json alone: the data
    is measured against its context before any weights are loaded (a missing, mistyped or
    pickle-only model fails here, in a second)."""
    from transformers import AutoConfig

    name_or_path = locate_model(name_or_path)
    adapter = adapter_config(name_or_path)
    if adapter is not None and adapter.get("base_model_name_or_path"):
        return model_config(adapter["base_model_name_or_path"], allow_pickle)
    _refuse_pickle_only_folder(name_or_path, allow_pickle)
    try:
        return AutoConfig.from_pretrained(name_or_path, trust_remote_code=False)
    except (OSError, ValueError, EnvironmentError) as error:
        raise ValueError(f"could not load model {name_or_path!r}: {first_line(error)}") from None


def locate_model(name_or_path: str) -> str:
    """A local folder as is; a Hub id as is when the Hub answers, else its cached copy.

    Failing fast matters: offline, transformers retries a dead network for about 30 s per file.
    """
    _refuse_missing_folder(name_or_path)
    if Path(name_or_path).is_dir():
        return name_or_path
    unreachable = hub_unreachable_reason()
    if unreachable is None:
        return name_or_path
    cached = _cached_snapshot(name_or_path)
    if cached is None:
        raise NetworkError(hub_unreachable_message(repr(name_or_path), "model", unreachable))
    return cached


def hub_unreachable_message(subject: str, kind: str, reason: str | None = None) -> str:
    """The one line for "the Hub can't be reached and nothing cached stands in", for a model or a dataset."""
    remedy = ("give a local model folder, or pass --offline-fallback (train, check) to use the offline tiny model"
              if kind == "model" else "use a local data file instead")
    why = f" ({reason})" if reason else ""
    return (f"could not load {subject}: the Hugging Face Hub is unreachable{why} and the {kind} is not in the "
            f"local cache; connect to the internet, {remedy}")


def _refuse_missing_folder(name_or_path: str) -> None:
    """A path that is not there gets a plain "does not exist", not a Hub repo-id error."""
    if looks_like_path(name_or_path) and not Path(name_or_path).is_dir():
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


def load_model_and_tokenizer(name_or_path: str, allow_pickle: bool = False, dropout: float | None = None,
                             **hub_options):
    """(model, tokenizer) ready to use: the one way a model is loaded (training loads the two apart only
    to report on the vocabulary); their vocabularies made to agree, pad and EOS ids set."""
    tokenizer = load_tokenizer(name_or_path, **hub_options)
    model = load_model(name_or_path, allow_pickle=allow_pickle, dropout=dropout, **hub_options)
    check_and_fix_vocabulary(model, tokenizer)
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
    from gpt2tune.paths import match_weights_mode

    match_weights_mode(output_dir)
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
    if not fallback_to_tiny or Path(name_or_path).is_dir():
        return name_or_path, None
    unreachable = hub_unreachable_reason()
    if unreachable is None:
        return name_or_path, None
    cached = _cached_snapshot(name_or_path)
    if cached:
        return cached, f"the Hugging Face Hub is unreachable ({unreachable}); using the cached copy of {name_or_path!r}"
    tiny = tiny_model_dir()
    return str(tiny), (
        f"could not reach {name_or_path!r} on the Hugging Face Hub ({unreachable}); using the offline tiny "
        f"model at {tiny} instead. {TINY_MODEL_NOTE}"
    )


HUB_PROBE_TIMEOUT_S = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_unreachable_reason(timeout_s: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """None when the Hub answers, else why not, in a few words.

    One request through huggingface_hub's own HTTP session (its offline mode, its endpoint, and the
    proxy in HTTPS_PROXY, as every download would use) with a short timeout: a download would retry
    a dead network for ~30 s per file. Any HTTP answer, even an error status, means it is reachable.
    """
    import os

    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled
    from huggingface_hub.utils import get_session

    if constants.is_offline_mode():
        return "offline mode is on: HF_HUB_OFFLINE is set"
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout_s, follow_redirects=False)
        return None
    except OfflineModeIsEnabled:
        return "offline mode is on: HF_HUB_OFFLINE is set"
    except Exception as error:  # connection refused, DNS, timeout, proxy: the kind is what helps
        proxy = next((name for name in PROXY_VARIABLES if os.environ.get(name)), None)
        # The proxy's URL is never shown: it may carry a user name and password.
        through = f" through the proxy set in {proxy}" if proxy else ""
        if "Timeout" in type(error).__name__:
            return f"no answer from {constants.ENDPOINT}{through} within {timeout_s:g} s"
        return f"could not connect to {constants.ENDPOINT}{through}: {type(error).__name__}"


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
