"""gpt2tune web app: `python app.py`, or the entry point of a Hugging Face Space.

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; GPT2TUNE_HOME is where runs go,
GPT2TUNE_BASE_MODEL the default base model, GPT2TUNE_MAX_UPLOAD the upload size limit,
GPT2TUNE_AUTO_RESUME=1 resumes the latest interrupted run at start-up. On a Space with persistent
storage, runs and Hub downloads live under /data and survive restarts.
"""

import logging
import os

from gpt2tune.paths import ephemeral_storage_note, persistent_dir, work_dir

log = logging.getLogger("gpt2tune.app")

if persistent_dir() is not None:
    # Downloaded base models and datasets persist as well. huggingface_hub reads HF_HOME when it is
    # imported (by gradio, below), so it is set before that.
    os.environ.setdefault("HF_HOME", str(persistent_dir() / ".huggingface"))

from gpt2tune.ui import build_app, launch_options  # noqa: E402
from gpt2tune.ui.common import default_base_model, warm_up  # noqa: E402
from gpt2tune.training.runner import auto_resume  # noqa: E402

# Trackio (report_to trackio) fixes its folder once per process: one project for all the app's runs.
os.environ.setdefault("TRACKIO_DIR", str(work_dir() / "trackio"))
demo = build_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("runs are saved under %s", work_dir())
    if ephemeral_storage_note():
        log.warning(ephemeral_storage_note())
    demo.queue().launch(prevent_thread_lock=True, **launch_options())
    warm_up(default_base_model())  # once the page is served: is the Hub reachable, or is it the tiny model?
    auto_resume()  # GPT2TUNE_AUTO_RESUME=1: continue the run a restart interrupted
    demo.block_thread()
