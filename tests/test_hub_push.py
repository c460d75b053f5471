"""Pushing to the Hub. No upload server exists offline, so the upload boundary (`HfApi.create_repo` /
`HfApi.upload_folder`) is mocked here; loading back over HTTP is real (see test_hub_server.py). What
else the suite patches, and why, is listed in tests/README.md."""


import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from gpt2tune.hub.push import push_to_hub
from gpt2tune.references import validate_repo_id

FAKE_TOKEN = "hf_FakeTokenForTests1234567890abcdef"


@pytest.fixture
def hub_calls(monkeypatch):
    calls = {}

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None, **kwargs):
        calls["create"] = dict(repo_id=repo_id, private=private, token=self.token)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, commit_message=None, ignore_patterns=None, **kwargs):
        from fnmatch import fnmatch
        from pathlib import Path

        root = Path(folder_path)
        files = sorted(
            str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not any(fnmatch(str(p.relative_to(root)), pat) for pat in ignore_patterns or [])
        )
        calls["upload"] = dict(repo_id=repo_id, files=files, message=commit_message,
                               contents={f: (root / f).read_bytes() for f in files})

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


@pytest.mark.slow
def test_push_uploads_model_tokenizer_and_card(trained_run, hub_calls):
    result, _, _ = trained_run
    url = push_to_hub(result.output_dir, "tester/faq-gpt2", token=FAKE_TOKEN, private=True)
    assert url.endswith("tester/faq-gpt2")
    assert hub_calls["create"] == {"repo_id": "tester/faq-gpt2", "private": True, "token": FAKE_TOKEN}
    files = hub_calls["upload"]["files"]
    for needed in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "metrics.json"):
        assert needed in files
    assert not any(f.startswith("checkpoints/") for f in files)
    for name, content in hub_calls["upload"]["contents"].items():
        assert FAKE_TOKEN.encode() not in content, name


@pytest.mark.slow
def test_token_from_environment(trained_run, hub_calls, monkeypatch):
    result, _, _ = trained_run
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    push_to_hub(result.output_dir, "tester/faq-gpt2")
    assert hub_calls["create"]["token"] == FAKE_TOKEN


@pytest.mark.slow
def test_missing_token_is_explained(trained_run, monkeypatch, tmp_path):
    result, _, _ = trained_run
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with pytest.raises(ValueError, match="no Hugging Face token"):
        push_to_hub(result.output_dir, "tester/faq-gpt2")


@pytest.mark.slow
@pytest.mark.parametrize("status, words", [(401, "rejected the token"), (403, "may not write"), (404, "not found")])
def test_http_errors_become_one_clear_line(trained_run, monkeypatch, status, words):
    result, _, _ = trained_run
    response = httpx.Response(status, request=httpx.Request("POST", "https://hub.invalid/api/repos/create"),
                              text=f"echo of Authorization: Bearer {FAKE_TOKEN}")

    def fail(self, *args, **kwargs):
        raise HfHubHTTPError(f"{status} error for token {FAKE_TOKEN}", response=response)

    monkeypatch.setattr(HfApi, "create_repo", fail)
    with pytest.raises(ValueError) as caught:
        push_to_hub(result.output_dir, "tester/faq-gpt2", token=FAKE_TOKEN)
    message = str(caught.value)
    assert words in message and str(status) in message
    assert FAKE_TOKEN not in message and "\n" not in message


@pytest.mark.parametrize("bad", ["", "noslash", "a/b/c", "../x", "user/..", "us er/name", "user/name.git"])
def test_bad_repo_ids(bad):
    with pytest.raises(ValueError, match="repo id"):
        validate_repo_id(bad)


def test_folder_without_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="holds no trained model"):
        push_to_hub(tmp_path, "tester/x", token=FAKE_TOKEN)
