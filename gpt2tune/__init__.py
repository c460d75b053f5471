"""gpt2tune: fine-tune GPT-2 on question/answer pairs, generate answers, publish to the Hub.

Heavy libraries (torch, transformers) load on first use, so `import gpt2tune` is instant.
"""

from gpt2tune.config import GenerationSettings, TuneConfig

__version__ = "0.1.0"
__all__ = ["TuneConfig", "GenerationSettings", "train", "answer", "stream_answer", "push_to_hub"]


def __getattr__(name):
    if name == "train":
        from gpt2tune.training.train import train

        return train
    if name in ("answer", "stream_answer"):
        from gpt2tune import generate

        return getattr(generate, name)
    if name == "push_to_hub":
        from gpt2tune.hub.push import push_to_hub

        return push_to_hub
    raise AttributeError(f"module 'gpt2tune' has no attribute {name!r}")
