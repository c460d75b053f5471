"""Answer metrics, the memorisation meter, eval loss, probes and `gpt2tune eval`, on tiny models."""

import json
import math

import pandas as pd
import pytest

from conftest import tiny_config
from gpt2tune.runs import artifacts
from gpt2tune.evaluation import metrics
from gpt2tune.config import GenerationSettings


@pytest.fixture(scope="module")
def trained(trained_run):
    from gpt2tune.data.load import load_qa_data
    from gpt2tune.model import load_model, load_tokenizer
    from gpt2tune.data.prep import split_frame

    result, _, config = trained_run
    model = load_model(str(result.output_dir)).eval()
    tokenizer = load_tokenizer(str(result.output_dir))
    train_frame, eval_frame = split_frame(load_qa_data(config.csv).frame, config.eval_fraction, config.seed)
    return result, config, model, tokenizer, train_frame, eval_frame


@pytest.mark.slow
def test_batched_answers_equal_one_at_a_time(trained):
    from gpt2tune.evaluation.evaluate import answer_many, greedy_settings
    from gpt2tune.generate import answer

    _, _, model, tokenizer, _, eval_frame = trained
    questions = list(eval_frame.question[:3]) + ["Hi?"]  # different lengths: left padding matters
    settings = greedy_settings(12)
    assert answer_many(model, tokenizer, questions, settings, batch_size=4) == [
        answer(model, tokenizer, q, settings) for q in questions
    ]
    assert not model.training
    # The tokenizer saved with the model pads and truncates as it did before training.
    saved = json.loads((trained[0].output_dir / "tokenizer.json").read_text())
    assert saved["padding"] is None and saved["truncation"] is None


# An oracle written out from the official SQuAD v1.1 script and Google's rouge_score package, not
# taken from gpt2tune: the recorded numbers must be the ones these give for the generated answers.
def _squad_normal(text: str) -> list[str]:
    import re
    import string

    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def _oracle_f1(prediction: str, reference: str) -> float:
    from collections import Counter

    p, r = _squad_normal(prediction), _squad_normal(reference)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    return 0.0 if common == 0 else 2 * common / (len(p) + len(r))


def _oracle_scores(generated: list[str], references: list[str]) -> dict:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    n = len(generated)
    return {
        "exact_match": sum(_squad_normal(g) == _squad_normal(r) for g, r in zip(generated, references)) / n,
        "f1": sum(_oracle_f1(g, r) for g, r in zip(generated, references)) / n,
        "rouge_l": sum(scorer.score(r, g)["rougeL"].fmeasure for g, r in zip(generated, references)) / n,
    }


@pytest.mark.slow
def test_answer_evaluation_is_wired_to_the_metrics(trained):
    from gpt2tune.evaluation.evaluate import answer_evaluation, answer_many, greedy_settings

    _, _, model, tokenizer, train_frame, eval_frame = trained
    result = answer_evaluation(model, tokenizer, train_frame, eval_frame, samples=3, seed=0)
    questions, references = list(eval_frame.question[:3]), list(eval_frame.answer[:3])
    generated = [s["generated"] for s in result.samples]
    assert [s["question"] for s in result.samples] == questions
    assert generated == answer_many(model, tokenizer, questions, greedy_settings(result_budget(tokenizer, train_frame, eval_frame)))
    expected = _oracle_scores(generated, references)
    recorded = result.metrics()
    assert recorded["answer_exact_match"] == pytest.approx(expected["exact_match"])
    assert recorded["answer_f1"] == pytest.approx(expected["f1"])
    assert recorded["answer_rouge_l"] == pytest.approx(expected["rouge_l"])
    assert recorded["answer_samples"] == 3
    # a copy: an eval answer within F1 0.9 of some training answer
    copies = sum(max(_oracle_f1(g, a) for a in train_frame.answer) >= 0.9 for g in generated) / len(generated)
    memorisation = recorded["memorisation"]
    assert memorisation["copy_rate"] == pytest.approx(copies)
    assert memorisation["eval_f1"] == pytest.approx(expected["f1"])
    assert memorisation["train_f1"] == result.train_scores["f1"]
    assert memorisation["text"].startswith(f"Training F1 is {memorisation['train_f1']:.2f}")


def result_budget(tokenizer, train_frame, eval_frame):
    """The token budget answer_evaluation uses for 3 eval questions and the 3 sampled training ones."""
    from gpt2tune.evaluation.evaluate import answer_budget

    references = list(eval_frame.answer[:3]) + list(train_frame.sample(n=3, random_state=0)["answer"])
    return answer_budget(tokenizer, references)


def test_a_copying_model_is_called_memorised():
    """The meter's inputs: an eval answer that is a training answer verbatim counts as a copy."""
    training = ["Paris is the capital of France.", "Water boils at 100 degrees."]
    eval_scores = metrics.answer_metrics(["Paris is the capital of France."], ["Rome is the capital of Italy."])
    train_scores = metrics.answer_metrics(training, training)
    copies = metrics.copy_rate(["Paris is the capital of France."], training)
    assert copies == 1.0
    verdict = metrics.memorisation_verdict(train_scores, eval_scores, copies)
    assert verdict["verdict"] == metrics.VERDICT_MEMORISED


@pytest.mark.slow
def test_training_writes_answer_metrics_and_verdict(trained):
    result, config, *_ = trained
    saved = artifacts.read_json(result.output_dir / artifacts.METRICS_FILE)
    assert saved == json.loads(json.dumps(result.metrics, default=str))
    for key in ("answer_exact_match", "answer_f1", "answer_rouge_l"):
        assert 0.0 <= saved[key] <= 1.0
    assert saved["answer_samples"] == min(config.eval_answer_samples, saved["eval_examples"])
    memo = saved["memorisation"]
    assert memo["verdict"] in (metrics.VERDICT_LEARNED, metrics.VERDICT_MEMORISED,
                               metrics.VERDICT_NOT_LEARNED, metrics.VERDICT_MIXED)
    assert memo["eval_f1"] == saved["answer_f1"] and 0.0 <= memo["copy_rate"] <= 1.0
    assert memo["text"].startswith(f"Training F1 is {memo['train_f1']:.2f}")
    samples = artifacts.read_json(result.output_dir / "samples.json")
    assert samples and all(set(s) == {"question", "reference", "generated", "nearest"} for s in samples)
    # each sample names its nearest training example: a row of the file, with a similarity in [0, 1]
    pairs = set(zip(*(pd.read_csv(config.csv)[c].astype(str) for c in ("question", "answer"))))
    for sample in samples:
        near = sample["nearest"]
        assert (near["question"], near["answer"]) in pairs and 0.0 <= near["score"] <= 1.0


@pytest.mark.slow
def test_eval_loss_matches_the_trainers(trained):
    from gpt2tune.evaluation.evaluate import eval_loss

    result, config, model, tokenizer, _, eval_frame = trained
    ours = eval_loss(model, tokenizer, eval_frame, config.max_length, batch_size=config.batch_size)
    assert ours["loss_examples"] == len(eval_frame)
    # Token-weighted mean vs the Trainer's mean of batch means: equal up to batch weighting.
    assert ours["eval_loss"] == pytest.approx(result.metrics["eval_loss"], rel=0.02)
    assert ours["perplexity"] == pytest.approx(math.exp(ours["eval_loss"]))


@pytest.mark.slow
def test_probes_are_answered_at_every_eval(tiny_model_dir, tmp_path):
    from gpt2tune.training.train import train

    events = []
    questions = ["What is gpt2tune?", "What is packing?"]
    config = tiny_config(tiny_model_dir, tmp_path / "out", max_steps=4, eval_steps=2, save_steps=0,
                         eval_answer_samples=0, probe_questions=questions)
    result = train(config, on_event=events.append)
    probes = [e for e in events if e.kind == "probe"]
    assert [(e.step, e.question) for e in probes] == [(2, questions[0]), (2, questions[1]),
                                                           (4, questions[0]), (4, questions[1])]
    # each answer is what greedy decoding gives at that step: the last ones, from the saved weights
    from gpt2tune.evaluation.evaluate import greedy_settings
    from gpt2tune.evaluation.probes import PROBE_MAX_NEW_TOKENS
    from gpt2tune.generate import answer
    from gpt2tune.model import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(str(result.output_dir))
    settings = greedy_settings(PROBE_MAX_NEW_TOKENS)
    assert [e.answer for e in probes[2:]] == [answer(model.eval(), tokenizer, q, settings) for q in questions]
    # each probe comes right after its eval, in the same event stream
    kinds = [e.kind for e in events if e.kind in ("eval", "probe")]
    assert kinds == ["eval", "probe", "probe", "eval", "probe", "probe"]
    timeline = artifacts.read_json(result.output_dir / "probes.json")
    assert timeline == [{"step": e.step, "question": e.question, "answer": e.answer} for e in probes]
    assert "answer_f1" not in result.metrics  # eval_answer_samples=0 turns answer scoring off


@pytest.mark.slow
def test_eval_command_writes_json(trained, tmp_path, capsys):
    from gpt2tune.cli import main

    result, config, *_ = trained
    out = tmp_path / "eval.json"
    code = main(["eval", "--model", str(result.output_dir), "--csv", config.csv, "--max-samples", "2",
                 "--max-length", "128", "--output", str(out)])
    assert code == 0
    written = json.loads(out.read_text())
    assert written["answer_samples"] == 2 and written["loss_examples"] == written["rows"] == 200
    assert math.isfinite(written["eval_loss"]) and written["perplexity"] > 1
    assert set(written) >= {"answer_exact_match", "answer_f1", "answer_rouge_l", "samples"}
    printed = capsys.readouterr().out
    assert f"eval_loss: {written['eval_loss']:.4f}" in printed and "answer_f1" in printed


def test_eval_command_rejects_a_missing_model(tmp_path, capsys):
    from gpt2tune.cli import main

    assert main(["eval", "--model", str(tmp_path / "nope"), "--csv", str(tmp_path / "x.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow
def test_compare_answers_side_by_side(trained, tiny_model_dir):
    from gpt2tune.evaluation.evaluate import compare_answers
    from gpt2tune.generate import answer
    from gpt2tune.model import load_model, load_tokenizer

    _, _, model, tokenizer, _, _ = trained
    base = (load_model(str(tiny_model_dir)).eval(), load_tokenizer(str(tiny_model_dir)))
    settings = GenerationSettings(max_new_tokens=8, repetition_penalty=1.0)
    row = compare_answers("What is gpt2tune?", base, (model, tokenizer), settings)
    assert row["base"] == answer(*base, "What is gpt2tune?", settings)
    assert row["finetuned"] == answer(model, tokenizer, "What is gpt2tune?", settings)
    assert row["same"] == (row["base"] == row["finetuned"])
    assert compare_answers("Hi?", base, base, settings)["same"]
