"""Who may spend the server's Hugging Face token, and who may train, on an app others can reach.

The CLI runs as the machine's owner and uses HF_TOKEN / the cached login as it always has. The web
app may be reached by anyone (a public Space), so there the server's token is used only for a caller
who proved to be the owner: a user of the app's own login (`demo.launch(auth=...)`, set by the owner),
or a Hugging Face sign-in (OAuth on a Space) as the Space's author or one of GPT2TUNE_OWNERS. Anyone
else pastes their own token. GPT2TUNE_ALLOW_SERVER_TOKEN=1 lifts the rule for a private local app.

A public app (a Space: SPACE_ID is set, or GPT2TUNE_PUBLIC=1 elsewhere) is safe by default: training,
stopping and publishing runs are the owner's unless the owner sets GPT2TUNE_OPEN_TRAINING=1; answering
with published runs stays open. What a visitor may then send is checked by `gpt2tune.visitor`.

No gradio here: the UI says who is calling with a `Caller`, this module decides.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

ALLOW_SERVER_TOKEN_ENV = "GPT2TUNE_ALLOW_SERVER_TOKEN"  # "1": every caller may use the server's token
OWNER_ONLY_TRAINING_ENV = "GPT2TUNE_OWNER_ONLY_TRAINING"  # "1": only the owner may start a training run
OPEN_TRAINING_ENV = "GPT2TUNE_OPEN_TRAINING"  # "1": on a public app, visitors may train (bounded) too
PUBLIC_ENV = "GPT2TUNE_PUBLIC"  # "1": apply the Space defaults to an app served elsewhere (a shared link)
SPACE_ID_ENV = "SPACE_ID"  # set by Hugging Face Spaces
OWNERS_ENV = "GPT2TUNE_OWNERS"  # comma-separated user names that count as the owner
SPACE_AUTHOR_ENV = "SPACE_AUTHOR_NAME"  # set by Hugging Face Spaces: the user or organisation owning it

# GPT-2 checkpoints everyone can download: no need to ask the Hub (which may be unreachable) about them
KNOWN_PUBLIC = frozenset({"gpt2", "distilgpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "openai-community/gpt2",
                          "openai-community/gpt2-medium", "openai-community/gpt2-large", "openai-community/gpt2-xl",
                          "distilbert/distilgpt2"})
PUBLIC_TTL_S = 600  # how long a "this repo is public" answer is trusted

APP_LOGIN = "app login"  # Gradio's own username/password login
HUGGING_FACE = "huggingface"  # "Sign in with Hugging Face" (OAuth) on a Space


@dataclass(frozen=True)
class Caller:
    """Who made a request: a name some login proved, and which login; nobody for an anonymous visitor."""

    username: str | None = None
    via: str | None = None

    @property
    def anonymous(self) -> bool:
        return not self.username or not self.via


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _named_owners() -> set[str]:
    return {name.strip().lower() for name in os.environ.get(OWNERS_ENV, "").split(",") if name.strip()}


def is_owner(caller: Caller) -> bool:
    """GPT2TUNE_OWNERS, when set, names the owners for every kind of login. Otherwise anyone who got
    through the app's own login is trusted (the owner handed out those passwords), and a Hugging Face
    sign-in counts when it is the Space's author."""
    if caller.anonymous:
        return False
    name = caller.username.strip().lower()
    named = _named_owners()
    if named:
        return name in named
    if caller.via == APP_LOGIN:
        return True
    author = os.environ.get(SPACE_AUTHOR_ENV, "").strip().lower()
    return caller.via == HUGGING_FACE and bool(author) and name == author


def may_use_server_token(caller: Caller) -> bool:
    return _flag(ALLOW_SERVER_TOKEN_ENV) or is_owner(caller)


def token_for(caller: Caller, pasted: str | None) -> str:
    """The token to push with: the one the caller pasted, else the server's if this caller may use it.

    Refused before anything is read or sent, in one line that says what to do instead."""
    from gpt2tune.hub.push import resolve_token

    pasted = (pasted or "").strip()
    if pasted:
        return pasted
    if not may_use_server_token(caller):
        raise ValueError(
            "paste your own Hugging Face write token: this app uses its own token only for its owner "
            f"(sign in as the owner, or set {ALLOW_SERVER_TOKEN_ENV}=1 on a private app)"
        )
    return resolve_token(None)


def public_app() -> bool:
    """Reached by anyone: a Hugging Face Space, or an app its owner marked public."""
    return bool(os.environ.get(SPACE_ID_ENV, "").strip()) or _flag(PUBLIC_ENV)


def _owner_only_reason() -> str | None:
    """Why training is the owner's on this app (the setting to name), or None when visitors may train."""
    if _flag(OWNER_ONLY_TRAINING_ENV):
        return f"{OWNER_ONLY_TRAINING_ENV}=1"
    if public_app() and not _flag(OPEN_TRAINING_ENV):
        return f"a public app, unless its owner sets {OPEN_TRAINING_ENV}=1"
    return None


GENERATE_INSTEAD = "sign in as the owner, or answer questions with the trained models on the Generate tab"


def check_owner_only(caller: Caller, action: str, instead: str = "sign in as the owner") -> None:
    """Where training is the owner's (GPT2TUNE_OWNER_ONLY_TRAINING=1, or a public app unless
    GPT2TUNE_OPEN_TRAINING=1), so are the runs: starting, stopping and resuming them, publishing one
    (a visitor's own token would otherwise copy the owner's model to their account) and showing the
    rows they were trained on. Visitors still ask the models questions. One line names `action`, the
    setting, and what to do `instead`."""
    reason = _owner_only_reason()
    if reason and not is_owner(caller):
        raise ValueError(f"{action} on this app is reserved for its owner ({reason}): {instead}")


_public_until: dict[str, float] = {}


def check_public_model(repo_id: str, what: str = "model") -> None:
    """Refuse a Hub repo that an anonymous user could not download.

    Downloads go through huggingface_hub, which sends the server's token when there is one, so a
    visitor naming the owner's private or gated repo would otherwise get it (and could then train
    on it, generate from it, or push a copy). The Hub is asked without any token; a repo it does not
    show to an anonymous user, or an answer that cannot be had, is refused before anything downloads.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if repo_id in KNOWN_PUBLIC or time.monotonic() < _public_until.get(repo_id, 0.0):
        return
    owner_only = "this app downloads private or gated models only for its owner"
    not_public = f"{what} {repo_id!r} is not a public model on the Hugging Face Hub: {owner_only}"
    try:
        info = HfApi().model_info(repo_id, token=False)
    except (RepositoryNotFoundError, GatedRepoError):
        raise ValueError(not_public) from None
    except Exception as error:  # unreachable, offline, rate limited: unknown is not public
        raise ValueError(f"could not check that {what} {repo_id!r} is public on the Hugging Face Hub "
                         f"({type(error).__name__}): {owner_only}") from None
    if info.private or info.gated:
        raise ValueError(not_public)
    _public_until[repo_id] = time.monotonic() + PUBLIC_TTL_S
