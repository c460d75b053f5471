"""What more than one tab uses: the error wrapper, the model cache, how a typed model name is resolved,
the uploaded data file, and which trained model a run picker means. Tabs import from here, never from
each other; `interface.py` connects one tab's components to another's events."""

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
RESOLVE_TTL_S = 600  # how long a "Hub unreachable, using the tiny model" verdict is trusted


def default_base_model() -> str:
    from gpt2tune.config import TuneConfig

    return os.environ.get(BASE_MODEL_ENV, "").strip() or TuneConfig.base_model


# --- errors ------------------------------------------------------------------------------------
# On the page a failure is one persistent line under the control that failed (`message_line`),
# cleared by the next success, and the outputs keep what they showed: a raised gr.Error would
# cover them with an "Error" badge and say it in a toast that vanishes. API clients still get it
# raised, as the AppError they expect (`listen` wires both). Toasts are for background events only.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/'\"]+/)+([^\s/'\"]+)")


def public_text(text: str) -> str:
    """No server paths on the page or to an API caller: an absolute path is shown by its last part
    (a bare top-level name such as a caller's own '/etc' says nothing of the server and stays)."""
    return _ABSOLUTE_PATH.sub(r"\1", text or "")


def error_text(error: Exception) -> str:
    """One line, in the app's words and without server paths, for any error a handler raised."""
    from gpt2tune.errors import first_line
    from gpt2tune.ui.wording import app_words

    if isinstance(error, gr.Error):
        return error.message
    if isinstance(error, ValueError):
        return app_words(public_text(first_line(error)))
    # Not the user's fault: the server log gets the traceback, the page one line.
    log.error("unexpected error in a UI handler", exc_info=error)
    text = public_text(first_line(error))
    return type(error).__name__ if text == type(error).__name__ else f"{type(error).__name__}: {text}"


def _as_gradio_error(error: Exception) -> gr.Error:
    return error if isinstance(error, gr.Error) else gr.Error(error_text(error), print_exception=False)


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


def message_line(elem_id: str, label: str = "Message") -> gr.HTML:
    """The tab's line for what went wrong, placed under the control whose action failed."""
    return gr.HTML("", elem_id=elem_id, elem_classes="message-line", label=label, container=False)


def render_message(text: str) -> str:
    return f'<div class="alert-line" role="alert">⚠️ {html.escape(text)}</div>' if text else ""


def on_page(fn, outputs: int):
    """`fn` for the page: its outputs and an empty message line, or on failure the message and every
    output skipped (left as it was). Streams stay streams."""
    def shown(result):
        result = result if outputs != 1 else (result,)
        return (*result, "")

    def failed(error):
        return (*[gr.skip()] * outputs, render_message(error_text(error)))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                for result in fn(*args, **kwargs):
                    yield shown(result)
            except Exception as error:  # noqa: BLE001  (every failure becomes the message line)
                yield failed(error)

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return shown(fn(*args, **kwargs))
        except Exception as error:  # noqa: BLE001  (every failure becomes the message line)
            return failed(error)

    return call


def listen(event, fn, *, outputs: list, message: gr.HTML, api_name: str | None = None, **options):
    """`event(fn, ...)` for the page, with failures in `message` (`on_page`); with `api_name`, the same
    handler also answers API clients under that name, raising its error (`ui_errors`) as they expect.

    `options` are the event's own (inputs or inputs_kwargs, concurrency, ...)."""
    if api_name:
        # A button no one sees: the API endpoint, with the outputs API clients know (no message line).
        gr.Button(visible=False).click(ui_errors(fn), outputs=outputs, api_name=api_name,
                                       **{k: v for k, v in options.items() if k != "show_progress_on"})
    # the progress shows on what is being computed, not on the message line
    options.setdefault("show_progress_on", [o for o in outputs if isinstance(o, gr.components.Component)
                                            and not isinstance(o, gr.State)])
    return event(on_page(fn, len(outputs)), outputs=[*outputs, message], api_visibility="private", **options)


# --- what a visitor may hand the server: the gate (gpt2tune.visitor) decides, this is its gradio glue --
HUB_FIELDS = ("dataset", "dataset_config", "dataset_split", "dataset_revision")


def visitor_file(file) -> str:
    """The path of a file a caller gave a handler, if the gate lets this app read it for them."""
    from gradio.utils import get_upload_folder

    from gpt2tune.visitor import data_file

    return data_file(file, get_upload_folder())


def visitor_data(values: dict) -> dict:
    """A handler's data settings as the gate passes them: `csv` a readable file (the sample when a
    Hub dataset is named instead), the Hub dataset's fields with how it may be read (token, cache)."""
    from gradio.utils import get_upload_folder

    from gpt2tune.visitor import HubDataset, data_source, hub_dataset

    hub = hub_dataset(*(values.get(name) for name in HUB_FIELDS), caller=current_caller())
    csv = data_source(values.get("csv"), hub.id if hub else None, get_upload_folder())
    return {**values, "csv": csv, **(hub or HubDataset(None)).settings()}


def current_caller(request: gr.Request | None = None):
    """Who is calling the running handler: an app login, a Hugging Face sign-in on a Space, or nobody."""
    from gradio.context import LocalContext

    from gpt2tune.hub.access import APP_LOGIN, HUGGING_FACE, Caller

    request = request if request is not None else LocalContext.request.get(None)
    if request is None:
        return Caller()
    if getattr(request, "username", None):
        return Caller(request.username, APP_LOGIN)
    signed_in = _hugging_face_user(request)
    return Caller(signed_in, HUGGING_FACE) if signed_in else Caller()


def oauth_enabled() -> bool:
    """"Sign in with Hugging Face" is real only on a Space with `hf_oauth: true`; elsewhere Gradio mocks
    it with the server's own account, so it must never count as a sign-in."""
    from gradio.utils import get_space  # Gradio's own test for "running on a Space"

    return bool(get_space() and os.environ.get("OAUTH_CLIENT_ID"))


def _hugging_face_user(request) -> str | None:
    if not oauth_enabled():
        return None
    scope = getattr(getattr(request, "request", None), "scope", None)
    session = scope.get("session") if isinstance(scope, dict) else None
    info = (session or {}).get("oauth_info") or {}  # where Gradio's OAuth keeps the signed-in user
    if not info or (info.get("expires_at") is not None and info["expires_at"] < time.time()):
        return None
    return (info.get("userinfo") or {}).get("preferred_username") or None


# --- models ------------------------------------------------------------------------------------
_loaded_mtime: dict[str, float] = {}


def load_model(reference: str, allow_pickle: bool = False, weights: str = "fp32"):
    """(model, tokenizer) for a resolved reference, from the process's one model cache, with its
    weights in `weights` format; a folder retrained since it was cached is reloaded."""
    from gpt2tune.generate import shared_cache
    from gpt2tune.runs.artifacts import weights_file

    cache = shared_cache()
    saved = weights_file(reference)  # a LoRA run's adapters
    if saved.exists():
        mtime = saved.stat().st_mtime
        if _loaded_mtime.get(reference, mtime) != mtime:
            cache.forget(reference)
        _loaded_mtime[reference] = mtime
    return cache.get(reference, allow_pickle=allow_pickle, weights=weights)


def resolve_model_reference(text: str, what: str = "model") -> str:
    """A Hub id as typed, or a folder inside the working folder (or the configured base model): the
    gate's `model_reference` for the calling handler's caller."""
    from gpt2tune.visitor import model_reference

    return model_reference(text, what, caller=current_caller(), default=default_base_model())


_resolved: dict[str, tuple[float, str, str | None]] = {}
_resolve_lock = threading.Lock()


def _resolve_remembered(reference: str) -> tuple[str, str | None]:
    """gpt2tune.model.resolve_base_model, remembered for a while: each failed Hub probe costs
    seconds of retries, and every Checks, Train and Generate click would pay them again."""
    from gpt2tune.model import resolve_base_model as resolve

    # One at a time: the start-up warm-up and a first click would otherwise both write the tiny model.
    with _resolve_lock:
        remembered = _resolved.get(reference)
        if remembered is None or time.monotonic() - remembered[0] > RESOLVE_TTL_S:
            remembered = (time.monotonic(), *resolve(reference, fallback_to_tiny=True))
            _resolved[reference] = remembered
    return remembered[1], remembered[2]


def base_model_to_load(text: str) -> tuple[str, str | None]:
    """(model to load, warning): the base model as the gate passes it, or the offline tiny model when
    the Hub is unreachable (remembered for a while)."""
    return _resolve_remembered(resolve_model_reference(text, "base model"))


def resolve_base_model(text: str) -> tuple[str, str | None]:
    """`base_model_to_load`, with its warning also popping up on the page."""
    resolved, warning = base_model_to_load(text)
    if warning:
        gr.Warning(warning)
    return resolved, warning


def warm_up(base_model: str) -> None:
    """Resolve the default base model in the background, so the first click doesn't wait on the Hub."""
    def run():
        try:
            _, warning = base_model_to_load(base_model)
            if warning:  # e.g. the Hub is unreachable and the offline tiny model stands in
                log.warning(warning)
        except Exception:  # a click will try again, and report it properly
            log.warning("could not resolve the base model %r in the background", base_model, exc_info=True)

    threading.Thread(target=run, name="gpt2tune-warm-up", daemon=True).start()


# --- what handlers on several tabs read ------------------------------------------------------------
TRAINED_RUN, OTHER_MODEL = "Trained run", "Folder or Hub id"  # the two ways to pick a model to answer with


def chosen_model(source: str, run: str | None, model_id: str | None) -> str:
    """The model folder or Hub id a run picker (or a typed name) means; the newest trained run by default."""
    from gpt2tune.runs import artifacts
    from gpt2tune.runs.store import run_dir, trained_runs

    if source == OTHER_MODEL:
        return resolve_model_reference(model_id)
    if not run:
        runs = trained_runs()
        if not runs:
            raise ValueError("no trained model yet: train one on the Train tab, or answer with a folder or Hub id")
        run = runs[0].name
    folder = run_dir(run)
    if not artifacts.has_model(folder):  # full weights, or a LoRA run's adapters
        raise ValueError(f"run {run!r} has no saved model yet (still training, or it failed)")
    return str(folder)


def refresh_run_choices(current=None):
    """A run picker listing the runs with a saved model, keeping the current pick if it is still there."""
    from gpt2tune.runs.store import trained_runs

    names = [run.name for run in trained_runs()]
    return gr.Dropdown(choices=names, value=current if current in names else (names[0] if names else None))


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
