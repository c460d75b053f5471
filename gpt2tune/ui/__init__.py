"""The Gradio app. The only part of gpt2tune that imports gradio; torch loads on first use."""

from gpt2tune.ui.interface import build_app, launch_options

__all__ = ["build_app", "launch_options"]
