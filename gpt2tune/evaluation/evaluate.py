"""Did fine-tuning work? Answer-level scores, the memorisation meter, and eval loss for any model.

Scores come from greedy answers (the prompt template of `generate.answer`, no sampling, no
repetition penalty), so two runs of the same model give the same numbers. Generation is batched:
left padding keeps every prompt's last token in the last column, and the answers are the ones
`generate.answer` gives one question at a time, several times faster. The padding is done here,
not by the tokenizer: asking a fast tokenizer to pad left changes its saved state, and the
tokenizer saved with the model would then pad left for everyone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gpt2tune.config import GenerationSettings, TuneConfig
from gpt2tune.generate import decoding_kwargs
from gpt2tune.evaluation.metrics import perplexity
from gpt2tune.data.prep import encode_text
from gpt2tune.data.prompt import format_answer, format_prompt

MAX_ANSWER_TOKENS = 128  # answers are scored on at most this many generated tokens
ANSWER_SLACK_TOKENS = 16  # room beyond the longest reference answer, so a near miss is not cut off
# questions per generate() call: 32 answered 1.3x faster than 16 for a 6-layer model on a 2-core CPU, 1.1x for 124M
GENERATION_BATCH = 32
SAMPLES_KEPT = 8  # eval Q&As kept (for the model card and the app)


def greedy_settings(max_new_tokens: int = MAX_ANSWER_TOKENS) -> GenerationSettings:
    # No repetition penalty: it would punish answers that must repeat numbers or names from the question.
    return GenerationSettings(max_new_tokens=max_new_tokens, do_sample=False, repetition_penalty=1.0)


def answer_many(model, tokenizer, questions: list[str], settings: GenerationSettings | None = None,
                batch_size: int = GENERATION_BATCH, on_batch=None) -> list[str]:
    """Answers to many questions, batched; same template and decoding as `generate.answer`.

    `on_batch(done, total)`, when given, is called after each batch (questions answered so far)."""
    settings = settings or greedy_settings()
    settings.validate()
    if not questions:
        return []
    prompts = [format_prompt(q) for q in questions]
    # Similar lengths together: less padding per batch. Answers go back in the caller's order.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, text in zip(chunk, _generate_batch(model, tokenizer, [prompts[i] for i in chunk], settings)):
                answers[i] = text
            if on_batch:
                on_batch(start + len(chunk), len(order))
    finally:
        model.train(was_training)
    return answers


def _generate_batch(model, tokenizer, prompts: list[str], settings: GenerationSettings) -> list[str]:
    import torch

    # Cut from the left if needed: the question's end (where "Answer:" is) must stay.
    room_for_prompt = model.config.n_positions - min(settings.max_new_tokens, 64)
    ids = [x[-room_for_prompt:] for x in encode_text(tokenizer, prompts)]
    width = max(len(x) for x in ids)
    # Left padding: every prompt's last token sits in the last column, where generation continues.
    encoded = {
        "input_ids": torch.tensor([[tokenizer.pad_token_id] * (width - len(x)) + x for x in ids]),
        "attention_mask": torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids]),
    }
    encoded = {k: v.to(model.device) for k, v in encoded.items()}
    kwargs = decoding_kwargs(tokenizer, settings, max_new_tokens=min(settings.max_new_tokens, model.config.n_positions - width))
    with torch.inference_mode():
        output = model.generate(**encoded, **kwargs)
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in output]


def answer_budget(tokenizer, references: list) -> int:
    """Tokens worth generating: the longest reference answer plus slack, at most MAX_ANSWER_TOKENS."""
    if not references:
        return MAX_ANSWER_TOKENS
    references = [r for ref in references for r in ([ref] if isinstance(ref, str) else ref)]
    longest = max(len(ids) for ids in encode_text(tokenizer, [format_answer(r) for r in references]))
    return max(1, min(MAX_ANSWER_TOKENS, longest + ANSWER_SLACK_TOKENS))


def score_questions(model, tokenizer, questions: list[str], references: list,
                    settings: GenerationSettings | None = None, on_batch=None) -> tuple[dict, list[str]]:
    """(answer_metrics dict, the generated answers) for these questions; a reference may be a list of
    acceptable answers (scored against the closest). `on_batch(done, total)` hears each batch."""
    from gpt2tune.evaluation.metrics import answer_metrics

    settings = settings or greedy_settings(answer_budget(tokenizer, references))
    generated = answer_many(model, tokenizer, questions, settings, on_batch=on_batch)
    return answer_metrics(generated, references), generated


@dataclass
class AnswerEvaluation:
    eval_scores: dict  # metrics.answer_metrics on eval questions
    train_scores: dict  # the same on as many training questions
    copy_rate: float  # share of eval answers that nearly copy a training answer
    verdict: dict  # metrics.memorisation_verdict: {"verdict", "text"}
    samples: list[dict] = field(default_factory=list)  # eval {"question", "reference", "generated"[, "references"]}
    asked: int = 0  # eval questions there were to answer; fewer were answered when the time budget ran out
    seconds: float = 0.0

    def metrics(self) -> dict:
        """The keys this adds to metrics.json."""
        return {
            "answer_exact_match": self.eval_scores["exact_match"],
            "answer_f1": self.eval_scores["f1"],
            "answer_rouge_l": self.eval_scores["rouge_l"],
            "answer_samples": self.eval_scores["count"],
            "answer_samples_asked": self.asked,
            "answer_scoring_s": self.seconds,
            "train_answer_f1": self.train_scores["f1"],
            "memorisation": {
                "verdict": self.verdict["verdict"],
                "text": self.verdict["text"],
                "train_f1": self.train_scores["f1"],
                "eval_f1": self.eval_scores["f1"],
                "copy_rate": self.copy_rate,
            },
        }

    def to_dict(self) -> dict:
        return asdict(self)


def answer_evaluation(model, tokenizer, train_frame, eval_frame, samples: int, seed: int = 0,
                      time_budget_s: float = 0.0) -> AnswerEvaluation:
    """Score greedy answers on up to `samples` eval questions and as many training questions.

    Train score far above eval score, with eval answers that copy training answers, is memorisation;
    both close and well above zero is learning (see `metrics.memorisation_verdict`).
    With `time_budget_s` > 0, no new batch starts once the budget is spent: eval and training
    questions go in pairs of half-batches, so whatever was answered is still a fair comparison.
    """
    import time

    from gpt2tune.data.answers import all_references, references_of
    from gpt2tune.evaluation.metrics import answer_metrics, copy_rate, memorisation_verdict

    if samples < 1 or len(eval_frame) == 0 or len(train_frame) == 0:
        raise ValueError("answer evaluation needs at least one eval and one training question")
    started = time.monotonic()
    eval_part = eval_frame.head(samples)  # split_frame already shuffled the eval rows
    train_part = train_frame.sample(n=min(len(eval_part), len(train_frame)), random_state=seed)
    asked = len(eval_part)
    settings = greedy_settings(answer_budget(tokenizer, references_of(eval_part) + references_of(train_part)))
    half = max(1, GENERATION_BATCH // 2)
    eval_answers, train_answers = [], []
    for start in range(0, asked, half):
        if time_budget_s and eval_answers and time.monotonic() - started > time_budget_s:
            break  # the first batch always runs: some score beats none
        eval_q = list(eval_part["question"].iloc[start:start + half])
        train_q = list(train_part["question"].iloc[start:start + half])
        answers = answer_many(model, tokenizer, eval_q + train_q, settings, batch_size=len(eval_q) + len(train_q))
        eval_answers += answers[:len(eval_q)]
        train_answers += answers[len(eval_q):]
    eval_part, train_part = eval_part.head(len(eval_answers)), train_part.head(len(train_answers))
    references = references_of(eval_part) + references_of(train_part)
    generated = eval_answers + train_answers
    n_eval = len(eval_part)
    eval_scores = answer_metrics(generated[:n_eval], references[:n_eval])
    train_scores = answer_metrics(generated[n_eval:], references[n_eval:])
    copies = copy_rate(generated[:n_eval], all_references(train_frame))
    kept = _samples(eval_part["question"], references[:n_eval], generated[:n_eval])
    verdict = memorisation_verdict(train_scores, eval_scores, copies)
    return AnswerEvaluation(eval_scores, train_scores, copies, verdict, kept, asked=asked,
                            seconds=time.monotonic() - started)


def _samples(questions, references, generated) -> list[dict]:
    """The first SAMPLES_KEPT Q&As; "references" only where a question has several acceptable answers."""
    kept = []
    for q, refs, g in list(zip(questions, references, generated))[:SAMPLES_KEPT]:
        kept.append({"question": q, "reference": refs[0], "generated": g, **({"references": refs} if len(refs) > 1 else {})})
    return kept


def eval_loss(model, tokenizer, frame, max_length: int, batch_size: int = 4, answers_only: bool = True,
              overlong: str = "truncate", on_batch=None) -> dict:
    """Mean loss per answer token (and perplexity) of `model` on a frame of Q&A pairs.

    Same examples, packing and masks as training; the mean is over tokens (the Trainer's eval loss
    averages batch means, which differs slightly when batches hold different token counts).
    """
    import torch

    from gpt2tune.data.prep import PackedCollator, rows_for
    from gpt2tune.loss import chunked_cross_entropy_sum, shifted_targets

    counts, rows = rows_for(frame, tokenizer, max_length, answers_only, pack=True, overlong=overlong)
    rows = rows.to_dict() if rows is not None else {"input_ids": []}
    float_mask = None if model.config._attn_implementation == "sdpa" else model.dtype
    collate = PackedCollator(tokenizer.pad_token_id, float_mask_dtype=float_mask)
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(rows["input_ids"]), batch_size):
                batch = collate([{k: rows[k][i] for k in rows}
                                 for i in range(start, min(start + batch_size, len(rows["input_ids"])))])
                batch.pop("num_real_tokens")
                # Token t is predicted from position t-1; the LM head runs on labelled positions only.
                keep, targets = shifted_targets(batch.pop("labels").to(model.device))
                logits = model(**{k: v.to(model.device) for k, v in batch.items()}, logits_to_keep=keep).logits
                total += chunked_cross_entropy_sum(logits, targets).item()
                count += targets.numel()
                if on_batch:  # (packed rows done, rows in all)
                    on_batch(min(start + batch_size, len(rows["input_ids"])), len(rows["input_ids"]))
    finally:
        model.train(was_training)
    loss = total / count if count else float("nan")
    return {"eval_loss": loss, "perplexity": perplexity(loss), "loss_examples": counts.examples, "loss_tokens": count,
            "loss_truncated": counts.truncated, "loss_dropped_overlong": counts.dropped_overlong,
            "loss_dropped_no_answer_left": counts.dropped_no_answer_left}


def evaluate_model(model_name_or_path: str, csv: str, max_samples: int = 64, max_length: int | None = None,
                   question_column: str | None = None, answer_column: str | None = None,
                   allow_pickle: bool = False, batch_size: int = 4, seed: int | None = None,
                   on_event=None) -> dict:
    """Eval loss, perplexity and answer scores of any model (run folder or Hub id) on a Q&A file.

    Says what it did with the data as `train` does (rows kept and dropped, examples cut or dropped,
    the max_length used: a run's own unless `max_length` is given, 0 = auto), scores answers on
    `max_samples` rows drawn at random with `seed` (a run's own by default), and warns when the file
    is the run's training file or shares questions with the run's training split. `on_event` receives
    what it is doing (Status) and how far each part is (Task), as for `train`.
    """
    from gpt2tune import events
    from gpt2tune.data.answers import references_of
    from gpt2tune.data.length import choose_max_length, example_lengths
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.evaluation.provenance import run_record, training_overlap
    from gpt2tune.model import load_model_and_tokenizer

    if max_samples < 0:
        raise ValueError(f"max_samples must be 0 or more (got {max_samples})")
    on_event = on_event or events.ignore
    task = lambda name: lambda done, total: on_event(events.Task(name, done, total))  # noqa: E731
    run = run_record(model_name_or_path)
    # a run's own settings where it has them; a model without a run's record: the defaults a run starts with
    settings = run.run.settings if run.run else TuneConfig()
    data = load_qa_data(csv, question_column, answer_column, strip_html=settings.strip_html)
    if max_length is not None and max_length != 0 and max_length < 8:
        raise ValueError(f"max_length must be at least 8 tokens, or 0 for auto (got {max_length})")
    on_event(events.Status(f"{data.report.source}: {len(data.frame):,} rows; loading {model_name_or_path}"))
    model, tokenizer = load_model_and_tokenizer(model_name_or_path, allow_pickle=allow_pickle)
    context = model.config.n_positions
    if max_length is None:
        requested, source = (run.max_length, "the run's") if run.max_length else (context, "the model's context")
    else:
        requested, source = max_length, "auto" if max_length == 0 else "set"
    overlong = settings.overlong
    lengths = example_lengths(tokenizer, data.frame["question"], data.frame["answer"])
    policy = choose_max_length(lengths, context, min(requested, context) if source != "set" else requested, overlong)
    seed = settings.seed if seed is None else seed
    result = {"model": model_name_or_path, "csv": str(csv), "rows": len(data.frame), "max_length": policy.max_length,
              "max_length_source": source, "seed": seed}
    result.update(eval_loss(model, tokenizer, data.frame, policy.max_length, batch_size,
                            answers_only=settings.train_on_answers_only, overlong=overlong,
                            on_batch=task("eval loss")))
    result["data"] = {"report": _plain(data.report), "length_policy": policy.to_dict()}
    result["data_summary"] = (data.report.summary() + "\n" + f"length ({source}): " + policy.summary())
    result["warnings"] = training_overlap(run, csv, data.frame, result)
    if max_samples:
        part = data.frame.sample(n=min(max_samples, len(data.frame)), random_state=seed)  # not the first rows
        references = references_of(part)
        scores, generated = score_questions(model, tokenizer, list(part["question"]), references,
                                              on_batch=task("answers"))
        result.update({"answer_exact_match": scores["exact_match"], "answer_f1": scores["f1"],
                       "answer_rouge_l": scores["rouge_l"], "answer_samples": scores["count"]})
        result["samples"] = _samples(part["question"], references, generated)
    return result


def _plain(report) -> dict:
    from dataclasses import asdict

    return asdict(report)


def compare_answers(question: str, base, finetuned, settings: GenerationSettings | None = None) -> dict:
    """The base and the fine-tuned model's answers to one question, side by side.

    `base` and `finetuned` are (model, tokenizer) pairs or names/folders (loaded once and cached).
    """
    from gpt2tune.generate import answer, shared_cache

    settings = settings or greedy_settings()
    answers = {}
    for role, which in (("base", base), ("finetuned", finetuned)):
        model, tokenizer = shared_cache().get(which) if isinstance(which, str) else which
        answers[role] = answer(model, tokenizer, question, settings)
    return {"question": question, **answers, "same": answers["base"] == answers["finetuned"]}
