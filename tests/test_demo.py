"""`gpt2tune demo`: a Space folder for one trained run that answers without gpt2tune.

The demo's app.py runs as a separate process, as a Space runs it, with gpt2tune made unimportable
(`sys.modules["gpt2tune"] = None`: any import of it raises), and is asked through gradio_client.
Publishing mocks the upload boundary (`HfApi.create_repo` / `upload_folder`, as test_hub_push does);
the Space it uploaded is then started against the stand-in Hub (olah), loading the model by its Hub id.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from app_server import app_url, launch_app_process  # noqa: F401  (app_url is a fixture)
from conftest import ROOT
from gradio_client import Client
from gradio_client.exceptions import AppError
from hub_server import hub_env, serve_hub_repo
from huggingface_hub import HfApi
from test_nearest import SAMPLE, training_rows

from gpt2tune.cli import main

FAKE_TOKEN = "hf_FakeTokenForTests1234567890abcdef"
# app.py as a Space starts it, with every import of gpt2tune failing
WITHOUT_GPT2TUNE = ["-c", "import runpy, sys; sys.modules['gpt2tune'] = None; runpy.run_path('app.py', run_name='__main__')"]


def plain_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


def greedy(folder: Path, question: str, max_length: int) -> str:
    """The answer the demo should give, with plain transformers: greedy, repetition penalty 1.1, prompt
    and answer together at most the run's max_length tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(f"Question: {question}\nAnswer:", return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(**encoded, do_sample=False, max_new_tokens=max_length - encoded["input_ids"].shape[1],
                             repetition_penalty=1.1, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(ids[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def text_of(message: dict) -> str:
    return "".join(part["text"] for part in message["content"] if part.get("type") == "text")


def front_matter(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def ask(url: str, question: str) -> list[dict]:
    history, cleared = Client(url, verbose=False).predict(question, [], api_name="/chat")
    assert cleared == ""  # the question box is emptied for the next question
    return history


@pytest.fixture(scope="module")
def demo_folder(trained_run, tmp_path_factory):
    result, _, _ = trained_run
    folder = tmp_path_factory.mktemp("demo") / "faq"
    done = subprocess.run([sys.executable, "-m", "gpt2tune", "demo", "--model", str(result.output_dir),
                           "--output-dir", str(folder), "--nearest"], capture_output=True, text=True,
                          env=plain_env(PYTHONPATH=str(ROOT)), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"demo written to {folder}; try it with: cd {folder} && python app.py"
    return folder


@pytest.mark.slow
def test_the_demo_folder_says_what_the_run_is(demo_folder, trained_run):
    _, _, config = trained_run
    import gradio

    meta = front_matter((demo_folder / "README.md").read_text())
    assert {k: meta[k] for k in ("sdk", "sdk_version", "app_file", "license")} == {
        "sdk": "gradio", "sdk_version": gradio.__version__, "app_file": "app.py", "license": "mit"}
    assert len(meta["short_description"]) <= 60 and "models" not in meta  # no Hub repo yet
    requirements = (demo_folder / "requirements.txt").read_text().splitlines()
    names = {line.split("==")[0] for line in requirements if "==" in line}
    assert names == {"torch", "transformers", "gradio", "numpy"}  # no training stack, no gpt2tune
    settings = json.loads((demo_folder / "demo.json").read_text())
    eval_questions = set(SAMPLE.question) - set(training_rows(config.seed, config.eval_fraction).question)
    assert settings["examples"] and set(settings["examples"]) <= eval_questions  # held out from training
    assert "## Results" in settings["summary"] and "sample_qa.csv" in settings["summary"]
    assert sorted(p.name for p in (demo_folder / "model").iterdir()) == [
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


@pytest.fixture
def hub_calls(monkeypatch):
    """Every create_repo and upload_folder, with the files an upload would send (as test_hub_push)."""
    calls = {"create": [], "upload": []}

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None, space_sdk=None, **kwargs):
        calls["create"].append(dict(repo_id=repo_id, private=private, repo_type=repo_type or "model",
                                    space_sdk=space_sdk, token=self.token))
        return f"https://huggingface.co/{'spaces/' if repo_type == 'space' else ''}{repo_id}"

    def upload_folder(self, repo_id, folder_path, repo_type=None, ignore_patterns=None, **kwargs):
        from fnmatch import fnmatch

        root = Path(folder_path)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                       and not any(fnmatch(str(p.relative_to(root)), pattern) for pattern in ignore_patterns or []))
        calls["upload"].append(dict(repo_id=repo_id, repo_type=repo_type or "model",
                                    contents={f: (root / f).read_bytes() for f in files}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


@pytest.mark.slow
def test_push_creates_the_space_and_it_answers_from_the_hub(trained_run, hub_calls, tmp_path, capsys):
    result, _, config = trained_run
    code = main(["demo", "--model", str(result.output_dir), "--output-dir", str(tmp_path / "demo"), "--push",
                 "--repo-id", "tester/faq-demo", "--model-repo-id", "tester/faq", "--token", FAKE_TOKEN])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[:2] == ["model: https://huggingface.co/tester/faq",
                                    "Space: https://huggingface.co/spaces/tester/faq-demo"]
    assert "private: the Space loads it only with a read token as its HF_TOKEN secret" in out
    assert hub_calls["create"] == [  # the model first, then the Space; private by default
        dict(repo_id="tester/faq", private=True, repo_type="model", space_sdk=None, token=FAKE_TOKEN),
        dict(repo_id="tester/faq-demo", private=True, repo_type="space", space_sdk="gradio", token=FAKE_TOKEN)]
    model_upload, space_upload = hub_calls["upload"]
    assert "model.safetensors" in model_upload["contents"] and "nearest_index.npz" not in model_upload["contents"]
    space = space_upload["contents"]
    assert space_upload["repo_id"] == "tester/faq-demo" and space_upload["repo_type"] == "space"
    assert {"app.py", "requirements.txt", "README.md", "demo.json"} <= set(space)
    assert not any(name.startswith("model/") for name in space)  # the Space loads the model by Hub id
    meta = front_matter(space["README.md"].decode())
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["models"] == ["tester/faq"]
    assert all(FAKE_TOKEN.encode() not in content for content in space.values())

    # The Space as uploaded, started against the stand-in Hub serving the model as uploaded.
    served, uploaded = tmp_path / "served-model", tmp_path / "space"
    for target, contents in ((served, model_upload["contents"]), (uploaded, space)):
        for name, content in contents.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(content)
    rows = training_rows(config.seed, config.eval_fraction)
    with serve_hub_repo(served, "tester/faq", workdir=tmp_path / "hub") as endpoint:
        env = plain_env(**hub_env(endpoint, tmp_path / "cache"))
        with launch_app_process(env, tmp_path / "space.log", WITHOUT_GPT2TUNE, app_dir=uploaded) as (url, _):
            history = ask(url, rows.question[0])
    assert text_of(history[1]) == greedy(result.output_dir, rows.question[0], 128)
    assert len(history) == 2  # the nearest training example is published only when asked (--nearest)


def test_demo_refuses_what_it_cannot_build(tiny_model_dir, tmp_path, capsys):
    assert main(["demo", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "d")]) == 2
    assert "is not a run folder (no gpt2tune_config.json)" in capsys.readouterr().err
    assert main(["demo", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "d"),
                 "--repo-id", "tester/x"]) == 2
    assert capsys.readouterr().err == "error: --repo-id and --model-repo-id publish the demo: add --push\n"
    assert main(["demo", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "d"), "--push"]) == 2
    assert capsys.readouterr().err == "error: --push needs --repo-id user/name for the Space\n"


@pytest.mark.slow
def test_demo_never_writes_over_a_folder_that_is_not_a_demo(trained_run, tmp_path, capsys):
    result, _, _ = trained_run
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    assert main(["demo", "--model", str(result.output_dir), "--output-dir", str(tmp_path / "notes")]) == 2
    assert "is not empty and is not a demo folder" in capsys.readouterr().err
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    for _ in range(2):  # a demo folder is rebuilt in place
        assert main(["demo", "--model", str(result.output_dir), "--output-dir", str(tmp_path / "again")]) == 0
    assert not (tmp_path / "again" / "nearest_index.npz").exists()


@pytest.mark.slow
def test_hub_tab_publishes_a_demo_of_the_chosen_run(app_url, trained_run, hub_calls, monkeypatch):  # noqa: F811
    from gpt2tune.runs.store import run_dir

    result, _, _ = trained_run
    shutil.copytree(result.output_dir, run_dir("faq"), ignore=shutil.ignore_patterns("checkpoints"))
    client = Client(app_url, verbose=False)
    arguments = dict(run="faq", space_id="tester/faq-demo", model_repo="", private=False, nearest=True)
    # a visitor who is not the owner pastes a token, or is refused before anything is built or sent
    monkeypatch.setenv("HF_TOKEN", "hf_ServerTokenNotForVisitors0000000000")
    with pytest.raises(AppError, match="paste your own Hugging Face write token"):
        client.predict(**arguments, token="", api_name="/publish_demo")
    assert hub_calls["create"] == []
    message = client.predict(**arguments, token=FAKE_TOKEN, api_name="/publish_demo")
    assert message == ("✅ Demo Space: [https://huggingface.co/spaces/tester/faq-demo](https://huggingface.co/spaces/"
                       "tester/faq-demo)\n\nModel: [https://huggingface.co/tester/faq](https://huggingface.co/tester/faq)")
    assert [(c["repo_id"], c["repo_type"], c["private"], c["token"]) for c in hub_calls["create"]] == [
        ("tester/faq", "model", False, FAKE_TOKEN), ("tester/faq-demo", "space", False, FAKE_TOKEN)]
    space = hub_calls["upload"][1]["contents"]
    assert {"app.py", "requirements.txt", "README.md", "nearest_index.npz"} <= set(space)  # asked for: published


def requirement_closure(requirements: str) -> list:
    """The installed distributions a requirements file names, with everything they require (their
    metadata's Requires-Dist, markers evaluated for this interpreter, no extras)."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    wanted = [Requirement(line).name for line in requirements.splitlines() if line and line[0].isalpha()]
    seen, found = set(), []
    while wanted:
        name = wanted.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        dist = distribution(name)
        found.append(dist)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return found


def requirements_only_venv(requirements: str, root: Path) -> tuple[str, set[str]]:
    """An empty venv (no pip, no system site-packages) that sees only the distributions `requirements`
    names and what they require, linked from this machine's site-packages. (python, their names)

    Installing them from an index is not possible here (no network but PyPI, and PyTorch's CPU index
    is unreachable): what this proves is that the file names every package the page needs, and that
    the page needs nothing of gpt2tune or of the training stack."""
    import venv

    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(root / "venv")
    visible = root / "site"
    visible.mkdir()
    dists = requirement_closure(requirements)
    for dist in dists:
        for top in {Path(str(f)).parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (visible / top).exists():
                (visible / top).symlink_to(source)
    site = next((root / "venv" / "lib").glob("python*/site-packages"))
    (site / "requirements-only.pth").write_text(f"{visible}\n")
    return str(root / "venv" / "bin" / "python"), {dist.metadata["Name"].lower() for dist in dists}


@pytest.mark.slow
def test_the_demo_answers_from_a_venv_holding_only_its_requirements(demo_folder, trained_run, tmp_path):
    result, _, config = trained_run
    python, names = requirements_only_venv((demo_folder / "requirements.txt").read_text(), tmp_path)
    assert {"torch", "transformers", "gradio", "numpy"} <= names
    assert not names & {"gpt2tune", "datasets", "accelerate", "peft", "matplotlib", "rouge-score"}
    probe = subprocess.run([python, "-c", "import gpt2tune"], env=plain_env(), capture_output=True, text=True,
                           cwd=demo_folder)  # where the app runs
    assert "No module named 'gpt2tune'" in probe.stderr
    settings = json.loads((demo_folder / "demo.json").read_text())
    assert settings["max_length"] == 128 and settings["model"] == "model" and settings["model_repo"] is None
    rows = training_rows(config.seed, config.eval_fraction)
    with launch_app_process(plain_env(), tmp_path / "demo.log", ["app.py"], app_dir=demo_folder,
                            python=python) as (url, _):
        question, answer, nearest = ask(url, rows.question[2])
        too_long = " ".join(["why"] * 130) + "?"
        history, kept = Client(url, verbose=False).predict(too_long, [], api_name="/chat")
    assert (question["role"], text_of(question)) == ("user", rows.question[2])
    assert text_of(answer) == greedy(result.output_dir, rows.question[2], 128)
    assert nearest["metadata"]["title"] == "Nearest training example · similarity 1.00"
    assert text_of(nearest) == f"**Q:** {rows.question[2]}\n\n**A:** {rows.answer[2]}"
    # a question the model cannot take is answered in the conversation, and kept in the box to shorten
    assert kept == too_long and text_of(history[-1]).startswith("⚠️ The question is too long: ")
    assert "at most 128 tokens together. Shorten it." in text_of(history[-1])


@pytest.fixture
def adapter_run(tiny_model_dir, tmp_path):
    """A LoRA run's folder as training leaves it (adapters, tokenizer, settings), with random adapter
    weights (peft's init_lora_weights=False): answers differ from the base model's, by construction."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpt2tune.config import TuneConfig

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False))
    folder = tmp_path / "lora-run"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    TuneConfig(base_model=str(tiny_model_dir), method="lora", max_length=64).save(folder / "gpt2tune_config.json")
    return folder


@pytest.mark.slow
def test_an_adapter_demo_loads_base_and_adapters(adapter_run, tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert main(["demo", "--model", str(adapter_run), "--output-dir", str(tmp_path / "demo")]) == 0
    demo = tmp_path / "demo"
    assert json.loads((demo / "demo.json").read_text())["base_model"] == "base"  # the local base, copied
    assert "peft==" in (demo / "requirements.txt").read_text()
    question = "How do I resume training?"
    with launch_app_process(plain_env(), tmp_path / "lora.log", WITHOUT_GPT2TUNE, app_dir=demo) as (url, _):
        answer = text_of(ask(url, question)[1])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_run).eval()
    encoded = tokenizer(f"Question: {question}\nAnswer:", return_tensors="pt")
    room = 64 - encoded["input_ids"].shape[1]
    with torch.inference_mode():
        ids = model.generate(**encoded, do_sample=False, max_new_tokens=room, repetition_penalty=1.1,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    assert answer == tokenizer.decode(ids[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answer != greedy(tiny_model_dir, question, 64)  # the adapters took part
    # merged full weights, when the run saved them, load without peft and without the base model
    model.merge_and_unload().save_pretrained(adapter_run / "merged")
    tokenizer.save_pretrained(adapter_run / "merged")
    assert main(["demo", "--model", str(adapter_run), "--output-dir", str(demo)]) == 0
    assert json.loads((demo / "demo.json").read_text())["base_model"] is None and not (demo / "base").exists()
    assert (demo / "model" / "model.safetensors").is_file() and "peft" not in (demo / "requirements.txt").read_text()
