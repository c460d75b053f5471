"""gpt2tune web app: `python app.py`, or the entry point of a Hugging Face Space.

It serves http://127.0.0.1:7860 (the address is printed). Settings come from the environment:
  GRADIO_SERVER_PORT=8080       another port (7860 is taken: Gradio tries the next ones)
  GRADIO_SERVER_NAME=0.0.0.0    listen on every interface, not only this machine
  GPT2TUNE_HOME                 where runs go (default ./gpt2tune_work)
  GPT2TUNE_BASE_MODEL           the default base model (a Hub id or a folder)
  GPT2TUNE_MAX_UPLOAD=20mb      the largest upload (default 50mb)
  GPT2TUNE_AUTO_RESUME=1        resume the latest interrupted run at start-up
On a Space with persistent storage, runs and Hub downloads live under /data and survive restarts.
"""

import logging
import os

if __name__ == "__main__":
    import argparse

    # `python app.py --help` prints the above and exits; the app takes no arguments of its own
    argparse.ArgumentParser(prog="python app.py", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()

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
