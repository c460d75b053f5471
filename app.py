"""gpt2tune web app: `python app.py`, or the entry point of a Hugging Face Space.

Host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; GPT2TUNE_HOME is where runs go,
GPT2TUNE_BASE_MODEL the default base model, GPT2TUNE_MAX_UPLOAD the upload size limit.
"""

import logging
import os

from gpt2tune.paths import work_dir
from gpt2tune.ui import build_app, launch_options
from gpt2tune.ui.common import default_base_model, warm_up

# Trackio (report_to trackio) fixes its folder once per process: one project for all the app's runs.
os.environ.setdefault("TRACKIO_DIR", str(work_dir() / "trackio"))
demo = build_app()

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    demo.queue().launch(prevent_thread_lock=True, **launch_options())
    warm_up(default_base_model())  # once the page is served: is the Hub reachable, or is it the tiny model?
    demo.block_thread()
