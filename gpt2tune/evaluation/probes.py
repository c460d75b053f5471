"""Probe questions: the model answers the same few questions at every eval, so a user watches it learn.

Events {"kind": "probe", "step", "question", "answer"} go to the same sink as the progress events;
the whole timeline is kept in `probes.json` in the output folder (rewritten at every eval, so an
app can show it while training runs).
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from gpt2tune import events
from gpt2tune.runs import artifacts

PROBES_FILE = "probes.json"
PROBE_MAX_NEW_TOKENS = 48  # short: probing must not slow training down noticeably


class ProbeCallback(TrainerCallback):
    def __init__(self, questions: list[str], tokenizer, on_event, output_dir: str | Path | None = None,
                 max_new_tokens: int = PROBE_MAX_NEW_TOKENS):
        self.questions = [q.strip() for q in questions if q and q.strip()]
        self.tokenizer = tokenizer
        self.on_event = on_event
        self.path = Path(output_dir) / PROBES_FILE if output_dir else None
        self.max_new_tokens = max_new_tokens
        self.timeline: list[dict] = []  # {"step", "question", "answer"}, oldest first
        self.last_step = None

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        self._probe(state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # The final model's answers, unless the last eval already probed this very step.
        if self.last_step != state.global_step:
            self._probe(state, model)

    def _probe(self, state, model) -> None:
        from gpt2tune.evaluation.evaluate import answer_many, greedy_settings

        if not self.questions or model is None or not state.is_world_process_zero:
            return
        # answer_many switches to eval mode (no dropout) and back to train mode afterwards.
        answers = answer_many(model, self.tokenizer, self.questions, greedy_settings(self.max_new_tokens))
        self.last_step = state.global_step
        for question, answer in zip(self.questions, answers):
            self.timeline.append({"step": state.global_step, "question": question, "answer": answer})
            self.on_event(events.Probe(step=state.global_step, question=question, answer=answer))
        if self.path is not None:
            artifacts.write_json(self.path, self.timeline)
