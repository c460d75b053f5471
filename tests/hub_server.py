"""Serve a local model folder over the Hugging Face Hub HTTP protocol (test helper).

``serve_hub_repo`` turns a folder produced by ``save_pretrained`` into a Hub repo
served by `olah <https://pypi.org/project/olah/>`_ (a Hub mirror server) on
127.0.0.1, so that *real* HTTP code paths can be exercised offline::

    with serve_hub_repo(model_dir, "tester/tiny-gpt2", workdir=tmp_path) as endpoint:
        env = {**os.environ, **hub_env(endpoint, tmp_path / "hf-cache")}
        subprocess.run([sys.executable, "-c", LOADING_CODE], env=env, check=True)

How olah is configured
----------------------
olah has no CLI flags for ``offline``/``mirrors-path``, so a TOML config is written
and passed with ``-c`` (with ``-c``, host/port/repos-path also come from the TOML)::

    [basic]
    host = "127.0.0.1"
    port = <free port>
    repos-path = "<workdir>/olah-cache"        # olah's own metadata/file cache
    mirrors-path = ["<workdir>/mirrors"]       # local git mirrors
    [accessibility]
    offline = true                             # never contact huggingface.co

In offline mode olah serves a repo ``<org>/<name>`` of type ``models`` from the git
repository ``<mirrors-path>/models/<org>/<name>`` (a normal, non-bare git repo; the
files are read from the commit objects with GitPython, so the working tree does not
matter). Files are committed as plain git blobs -- no git-lfs (olah would look for
LFS pointers' payloads under ``.git/lfs/objects``) -- which is fine for small test
models. The branch is named ``main`` because clients ask for ``revision=main``.

What needed special handling (and why)
--------------------------------------
Served straight from the git mirror (these work out of the box):
``/api/models/<repo>/revision/<rev>``, ``/api/models/<repo>/tree/<rev>/<dir>``
(existing dirs), and ``HEAD``/``GET /<repo>/resolve/<rev>/<file>`` for files that
exist in the commit.

Everything else falls back to olah's *offline cache* in ``repos-path``. With that
cache empty, olah answers ``401 RepoNotFound`` for:

* ``GET /api/models/<org>/<name>`` (no revision) -- olah looks up the newest commit
  in ``repos-path/api/models/<org>/<name>/revision/*/meta_head.json``.
  transformers 5 calls this (``model_info``) at the start of every
  ``from_pretrained``; it tolerates the error, but then resolves files by branch.
* ``HEAD /<repo>/resolve/main/<missing file>`` and
  ``GET /api/models/<repo>/tree/main/<missing dir>`` -- olah must resolve the
  revision ``main`` to a commit SHA from the cache before it can say "entry not
  found". huggingface_hub turns the 401 into ``RepositoryNotFoundError``, which
  transformers does *not* treat as "optional file absent", so loading fails.
  With transformers 5.24 + huggingface_hub 2.4, ``AutoTokenizer.from_pretrained``
  died on ``GET /api/models/<repo>/tree/main/additional_chat_templates`` (the
  chat-template folder listing); the optional-file probes that follow
  (``vocab.json``, ``merges.txt``, ``added_tokens.json``,
  ``special_tokens_map.json``, ``chat_template.jinja``, and for ``pipeline()``
  also ``processor_config.json``, ``preprocessor_config.json``,
  ``video_preprocessor_config.json``) would fail the same way.
  ``AutoModelForCausalLM`` and ``snapshot_download`` happened to only request
  files that exist (``config.json``, ``model.safetensors``,
  ``generation_config.json``; snapshot_download uses the tree listing of the
  resolved SHA), so they worked either way.

Fix (``_seed_offline_metadata``): pre-populate olah's offline cache with the two
records olah itself would have written while online:

* ``api/models/<org>/<name>/revision/<sha>/meta_head.json`` -- a plain
  ``{"sha", "lastModified"}`` document, so "newest commit" resolves to ``<sha>``
  (and the repo-info request is then answered from the git mirror);
* ``api/models/<org>/<name>/revision/main/resolved_commit.json`` (+ ``.body``
  sidecar holding the SHA) -- the cached ``main -> <sha>`` mapping.

With those, missing files/dirs get ``404 EntryNotFound`` exactly like the real Hub,
which transformers/huggingface_hub treat as "optional file not present". No
placeholder files are added to the served repo (adding e.g. an empty
``custom_generate/`` or ``additional_chat_templates/`` would change behaviour).

Client side (``hub_env``): huggingface_hub reads ``HF_ENDPOINT``/``HF_HOME``/...
into ``huggingface_hub.constants`` at import time, so the variables must be in the
environment *before* huggingface_hub/transformers are imported. The robust way is
to do the loading in a subprocess started with ``env={**os.environ, **hub_env(...)}``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from net import free_port, http_status

STARTUP_TIMEOUT_S = 120.0  # olah on a busy 2-core machine
SHUTDOWN_TIMEOUT_S = 10.0
_BRANCH = "main"
_LOG_TAIL_CHARS = 4000


def hub_env(endpoint: str, cache_dir: Path) -> dict[str, str]:
    """Environment variables that make huggingface_hub/transformers use this endpoint and cache.

    Merge into a copy of ``os.environ`` for a subprocess (the values are read when
    huggingface_hub is imported). Every cache location is pinned under
    ``cache_dir`` -- not just ``HF_HOME`` -- so a developer's ``HF_HUB_CACHE`` etc.
    cannot leak in; use a fresh ``cache_dir`` per test.
    """
    cache_dir = Path(cache_dir)
    no_proxy = _merge_no_proxy(os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "")
    return {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(cache_dir),
        "HF_HUB_CACHE": str(cache_dir / "hub"),
        "HF_ASSETS_CACHE": str(cache_dir / "assets"),
        "HF_XET_CACHE": str(cache_dir / "xet"),
        "HF_TOKEN_PATH": str(cache_dir / "token"),
        "HF_STORED_TOKENS_PATH": str(cache_dir / "stored_tokens"),
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        # olah serves plain HTTP, never Xet; don't try the Xet client.
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        # Loopback must never go through an HTTP(S)_PROXY set in the environment.
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


@contextmanager
def serve_hub_repo(
    model_dir: Path, repo_id: str = "tester/tiny-gpt2", workdir: Path | None = None, repo_type: str = "models"
) -> Iterator[str]:
    """Copy model_dir into a local git repo laid out as olah expects, start olah on a
    free 127.0.0.1 port in offline mode, wait until it answers, yield the endpoint URL
    ("http://127.0.0.1:PORT"); stop the server (and its child processes) on exit.

    ``repo_id`` must be ``"<org>/<name>"``. ``workdir`` receives the git mirror, the
    olah cache/config and ``olah.log`` (kept for inspection when given; a temporary
    directory, removed afterwards, otherwise). ``repo_type="datasets"`` serves the
    folder as a dataset repo (``/api/datasets/...``, ``/datasets/<repo>/resolve/...``). Raises ``RuntimeError`` with the tail
    of the server log if olah does not come up within ``STARTUP_TIMEOUT_S``.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model_dir {model_dir} is not a directory")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    org, name = parts

    own_workdir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="olah-hub-")) if own_workdir else Path(workdir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        mirrors = root / "mirrors"
        cache = root / "olah-cache"
        if repo_type not in ("models", "datasets"):
            raise ValueError(f"repo_type must be 'models' or 'datasets', got {repo_type!r}")
        git_dir = mirrors / repo_type / org / name
        if git_dir.exists():
            shutil.rmtree(git_dir)
        if cache.exists():  # stale offline metadata would point at an old commit
            shutil.rmtree(cache)
        shutil.copytree(model_dir, git_dir, ignore=shutil.ignore_patterns(".git"))
        sha = _commit_folder(git_dir)
        _seed_offline_metadata(cache, org, name, sha, repo_type)

        proc, endpoint = _start_olah(root, mirrors, cache, repo_id, repo_type)
        try:
            yield endpoint
        finally:
            _stop(proc)
    finally:
        if own_workdir:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def serve_hub_repos(repos: dict[str, Path], workdir: Path) -> Iterator[str]:
    """Like ``serve_hub_repo``, for several model repos on one server: ``{"org/name": folder}``
    (e.g. a LoRA adapter and the base model its adapter_config.json names)."""
    workdir = Path(workdir)
    mirrors, cache = workdir / "mirrors", workdir / "olah-cache"
    shutil.rmtree(mirrors, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    for repo_id, folder in repos.items():
        org, name = repo_id.split("/")
        git_dir = mirrors / "models" / org / name
        shutil.copytree(folder, git_dir, ignore=shutil.ignore_patterns(".git"))
        _seed_offline_metadata(cache, org, name, _commit_folder(git_dir))
    proc, endpoint = _start_olah(workdir, mirrors, cache, next(iter(repos)))
    try:
        yield endpoint
    finally:
        _stop(proc)


# --------------------------------------------------------------------------- #
# internals


def _merge_no_proxy(existing: str) -> str:
    hosts = [h.strip() for h in existing.split(",") if h.strip()]
    for host in ("127.0.0.1", "localhost"):
        if host not in hosts:
            hosts.append(host)
    return ",".join(hosts)


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ)
    # Ignore the user's/system git config (hooks, gpg signing, LFS filters, ...).
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="hub-server",
        GIT_AUTHOR_EMAIL="hub-server@localhost",
        GIT_COMMITTER_NAME="hub-server",
        GIT_COMMITTER_EMAIL="hub-server@localhost",
        GIT_AUTHOR_DATE="2024-01-01T00:00:00+00:00",
        GIT_COMMITTER_DATE="2024-01-01T00:00:00+00:00",
    )
    out = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


def _commit_folder(git_dir: Path) -> str:
    """Make ``git_dir`` a git repo whose branch ``main`` holds all its files; return the SHA."""
    _git(git_dir, "init", "-q")
    _git(git_dir, "symbolic-ref", "HEAD", f"refs/heads/{_BRANCH}")
    _git(git_dir, "add", "-A", "-f", ".")
    _git(git_dir, "commit", "-q", "--no-verify", "-m", "Upload model")
    return _git(git_dir, "rev-parse", "HEAD")


def _seed_offline_metadata(cache: Path, org: str, name: str, sha: str, repo_type: str = "models") -> None:
    """Write the offline-cache records olah needs to resolve ``main`` and the newest
    commit (see module docstring). Formats follow olah 0.5.4:
    ``olah.utils.repo_utils.get_newest_commit_hf_offline`` (meta_head.json: plain
    RepoMeta JSON) and ``get_commit_hf_offline`` / ``olah.utils.cache_utils``
    (resolved_commit.json envelope + raw ``.body`` sidecar)."""
    revisions = cache / "api" / repo_type / org / name / "revision"
    meta_head = revisions / sha / "meta_head.json"
    meta_head.parent.mkdir(parents=True, exist_ok=True)
    meta_head.write_text(
        json.dumps({"sha": sha, "lastModified": datetime.now(timezone.utc).isoformat()})
    )
    resolved = revisions / _BRANCH / "resolved_commit.json"
    resolved.parent.mkdir(parents=True, exist_ok=True)
    resolved.write_text(json.dumps({"status_code": 200, "headers": {}, "cached_at": time.time()}))
    (resolved.parent / (resolved.name + ".body")).write_bytes(sha.encode("ascii"))


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _log_tail(log_path: Path) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as e:
        return f"<could not read {log_path}: {e}>"
    return text[-_LOG_TAIL_CHARS:]


def _start_olah(
    root: Path, mirrors: Path, cache: Path, repo_id: str, repo_type: str = "models"
) -> tuple[subprocess.Popen, str]:
    """Start olah; retry on a new port if the chosen one got taken in the meantime."""
    log_path = root / "olah.log"
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        config = root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f"host = {_toml_str('127.0.0.1')}\n"
            f"port = {port}\n"
            f"repos-path = {_toml_str(str(cache))}\n"
            f"mirrors-path = [{_toml_str(str(mirrors))}]\n"
            "[accessibility]\n"
            "offline = true\n"
        )
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("OLAH_CONFIG", None)  # would switch olah to its multi-worker config path
        with open(log_path, "ab") as log:
            log.write(f"\n===== starting olah on 127.0.0.1:{port} =====\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", "olah.server", "-c", str(config), "--log-path", str(root / "logs")],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group -> we can stop it and any children
            )
        endpoint = f"http://127.0.0.1:{port}"
        probe = f"{endpoint}/api/{repo_type}/{repo_id}/revision/{_BRANCH}"
        try:
            status = _wait_ready(proc, probe)
        except BaseException:
            _stop(proc)
            raise
        if status == 200:
            return proc, endpoint
        _stop(proc)
        tail = _log_tail(log_path)
        if status is not None:  # server is up but does not serve the repo: no point retrying
            raise RuntimeError(
                f"olah is running but answered HTTP {status} for {probe} (log: {log_path}). "
                f"Log tail:\n{tail}"
            )
        last_error = tail
        if "address already in use" not in tail.lower():
            break
    raise RuntimeError(
        f"olah exited or did not answer within {STARTUP_TIMEOUT_S:.0f}s "
        f"(log: {log_path}). Log tail:\n{last_error}"
    )


def _wait_ready(proc: subprocess.Popen, url: str) -> int | None:
    """Poll ``url`` until olah answers; return its status (None: died or timed out)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        status = http_status(url)
        if status is not None:
            return status
        time.sleep(0.1)
    return None


def _stop(proc: subprocess.Popen) -> None:
    """Stop olah and everything in its process group (it was started as a session leader)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    # Reap leftovers in the group (and the leader if SIGTERM was not enough).
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def recording_hub(upstream: str | None = None) -> Iterator[tuple[str, list[dict]]]:
    """A stand-in Hub that records every request it gets: method, path and Authorization header.

    With ``upstream`` (an olah endpoint) it forwards each request there and relays the answer, so
    real downloads work through it; without, it answers every request as the Hub answers an
    anonymous request for a private repo (401, ``X-Error-Code: RepoNotFound``). Yields
    ``(endpoint, records)``; ``records`` fills while clients call it.
    """
    import httpx
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    records: list[dict] = []
    hop_by_hop = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length", "host"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            records.append({"method": self.command, "path": self.path,
                            "authorization": self.headers.get("Authorization")})
            if upstream is None:
                status, headers, content = 401, {"X-Error-Code": "RepoNotFound",
                                                 "Content-Type": "application/json"}, b'{"error":"Repository not found"}'
            else:
                sent = {k: v for k, v in self.headers.items() if k.lower() not in hop_by_hop}
                with httpx.Client(trust_env=False, follow_redirects=False, timeout=60) as client:
                    response = client.request(self.command, upstream + self.path, headers=sent, content=body)
                status, content = response.status_code, response.content
                headers = {k: v for k, v in response.headers.items() if k.lower() not in hop_by_hop}
                if "location" in {k.lower() for k in headers}:
                    headers = {k: (v.replace(upstream, endpoint) if k.lower() == "location" else v)
                               for k, v in headers.items()}
            length = str(len(content))
            if self.command == "HEAD" and upstream is not None:  # a HEAD's length is the file's, not its empty body's
                length = response.headers.get("content-length", length)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_HEAD = do_POST = _answer

        def log_message(self, *args):  # quiet: the records are the log
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="recording-hub", daemon=True)
    thread.start()
    try:
        yield endpoint, records
    finally:
        server.shutdown()
        server.server_close()
