"""A shareable demo of one fine-tuned model: a small Gradio Space folder that runs without gpt2tune.

`build.build_demo` writes it from a run folder (`template_app.py` becomes its app.py);
`gpt2tune.demo.publish.push_demo` publishes it.
"""
