"""What every tab shares: the error wrapper, the model cache, and how a typed model name is resolved."""

from __future__ import annotations

import functools
import html
import inspect
import logging
import os
import re
import threading
import time

import gradio as gr

log = logging.getLogger("gpt2tune.ui")

BASE_MODEL_ENV = "GPT2TUNE_BASE_MODEL"  # e.g. a local folder, for offline demos and tests
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")
RESOLVE_TTL_S = 600  # how long a "Hub unreachable, using the tiny model" verdict is trusted


def default_base_model() -> str:
    return os.environ.get(BASE_MODEL_ENV, "").strip() or "gpt2"


# --- errors ------------------------------------------------------------------------------------
def _as_gradio_error(error: Exception) -> gr.Error:
    if isinstance(error, gr.Error):
        return error
    if isinstance(error, ValueError):
        return gr.Error(str(error), print_exception=False)
    # Not the user's fault: the server log gets the traceback, the page one line.
    log.exception("unexpected error in a UI handler")
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    return gr.Error(f"{type(error).__name__}: {first}".rstrip(": "), print_exception=False)


def ui_errors(fn):
    """Wrap a handler so a core ValueError shows as its one-line message, never as a traceback.

    Generator handlers (streaming) stay generators, so Gradio still streams them.
    """
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as error:
                raise _as_gradio_error(error) from None

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            raise _as_gradio_error(error) from None

    return call


# --- models ------------------------------------------------------------------------------------
_cache = None
_cache_lock = threading.Lock()
_loaded_mtime: dict[str, float] = {}


def model_cache():
    """One cache per process: two tabs asking for the same model share its weights."""
    global _cache
    with _cache_lock:
        if _cache is None:
            from gpt2tune.generate import ModelCache

            _cache = ModelCache(capacity=3)
        return _cache


def load_model(reference: str, allow_pickle: bool = False):
    """(model, tokenizer) for a resolved reference; a folder retrained since it was cached is reloaded."""
    cache = model_cache()
    from gpt2tune.runs.artifacts import weights_file

    weights = weights_file(reference)  # a LoRA run's adapters
    if weights.exists():
        mtime = weights.stat().st_mtime
        if _loaded_mtime.get(reference, mtime) != mtime:
            cache.forget(reference)
        _loaded_mtime[reference] = mtime
    return cache.get(reference, allow_pickle=allow_pickle)


def resolve_model_reference(text: str, what: str = "model") -> str:
    """A Hub id as typed, or a folder: inside the working folder (or the configured base model).

    Folders elsewhere on the server are refused so that a public app can't be pointed at them.
    """
    from gpt2tune.paths import inside, work_dir

    text = (text or "").strip()
    if not text:
        raise ValueError(f"the {what} is empty: type a Hub id such as gpt2 or user/name, or a folder")
    if text == default_base_model():
        return text
    root = work_dir()
    # "user/name" is a Hub id unless such a folder exists in the working folder
    looks_like_path = text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text
    if looks_like_path or (root / text).is_dir():
        folder = inside(root, os.path.expanduser(text))
        if not folder.is_dir():
            raise ValueError(f"{what} folder {text!r} does not exist under the working folder {root}")
        return str(folder)
    if not HUB_ID_PATTERN.match(text) or ".." in text:
        raise ValueError(f"{what} {text!r} is neither a Hub id (name or user/name) nor a folder")
    return text


_resolved: dict[str, tuple[float, str, str | None]] = {}


def _resolve_remembered(reference: str) -> tuple[str, str | None]:
    """gpt2tune.model.resolve_base_model, remembered for a while: each failed Hub probe costs
    seconds of retries, and every Checks, Train and Generate click would pay them again."""
    from gpt2tune.model import resolve_base_model as resolve

    remembered = _resolved.get(reference)
    if remembered is None or time.monotonic() - remembered[0] > RESOLVE_TTL_S:
        remembered = (time.monotonic(), *resolve(reference, fallback_to_tiny=True))
        _resolved[reference] = remembered
    return remembered[1], remembered[2]


def resolve_base_model(text: str) -> tuple[str, str | None]:
    """(model to load, warning): the typed model, or the offline tiny model when the Hub is
    unreachable, with a warning that also pops up on the page."""
    resolved, warning = _resolve_remembered(resolve_model_reference(text, "base model"))
    if warning:
        gr.Warning(warning)
    return resolved, warning


def warm_up(base_model: str) -> None:
    """Resolve the default base model in the background, so the first click doesn't wait on the Hub."""
    def run():
        try:
            _resolve_remembered(resolve_model_reference(base_model, "base model"))
        except Exception:  # a click will try again, and report it properly
            log.warning("could not resolve the base model %r in the background", base_model, exc_info=True)

    threading.Thread(target=run, name="gpt2tune-warm-up", daemon=True).start()


# --- formatting --------------------------------------------------------------------------------
def stat_tile(label: str, value: str, note: str = "", tone: str = "") -> str:
    """One figure in a tile (the `.stat` style): label, big value, optional note; tone good/warn."""
    note_html = f'<div class="stat-note">{html.escape(note)}</div>' if note else ""
    return (f'<div class="stat {tone}"><div class="stat-label">{html.escape(label)}</div>'
            f'<div class="stat-value">{html.escape(value)}</div>{note_html}</div>')


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
