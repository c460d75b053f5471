"""Early stopping on eval loss: training stops before max_steps and the best checkpoint is restored."""

import pytest
from safetensors.torch import load_file

from conftest import tiny_config, write_eval_loss_rises_csv
from gpt2tune.runs import artifacts


@pytest.fixture(scope="module")
def overfit_run(tiny_model_dir, tmp_path_factory):
    """Data on which the eval loss rises as training goes, by construction (conftest), so patience runs out
    long before max_steps on any CPU. save_steps deliberately differs from eval_steps: checkpoints must be
    aligned to evals."""
    from gpt2tune.training.train import train

    events = []
    root = tmp_path_factory.mktemp("early")
    csv = write_eval_loss_rises_csv(root / "rises.csv", eval_fraction=0.25, seed=42)
    config = tiny_config(tiny_model_dir, root / "out", csv=str(csv), eval_fraction=0.25, seed=42, max_steps=40,
                         learning_rate=1e-2, eval_steps=2, save_steps=5, early_stopping_patience=2,
                         eval_answer_samples=0, logging_steps=1)
    return train(config, on_event=events.append), events, config


@pytest.mark.slow
def test_stops_before_max_steps_with_a_reason(overfit_run):
    result, events, config = overfit_run
    metrics = result.metrics
    evals = [(e.step, e.eval_loss) for e in events if e.kind == "eval"]
    best_step, best_loss = min(evals, key=lambda point: point[1])
    assert metrics["global_step"] < config.max_steps
    assert metrics["best_step"] == best_step < metrics["global_step"]
    # stopped exactly `patience` evals after the best one
    assert [step for step, _ in evals if step > best_step] == [best_step + 2, best_step + 4]
    assert metrics["stopped_early_reason"].startswith(f"eval loss did not improve for 2 evals after step {best_step}")
    assert not result.stopped_early  # that flag means the user pressed stop
    assert any("saving a checkpoint at every eval" in getattr(e, "message", "") for e in events)
    # the eval loss reported is the restored model's
    assert metrics["eval_loss"] == pytest.approx(best_loss, rel=1e-4)


@pytest.mark.slow
def test_saved_weights_are_the_best_checkpoint(overfit_run):
    result, _, _ = overfit_run
    best = result.metrics["best_step"]
    checkpoint = result.output_dir / artifacts.CHECKPOINTS_DIR / f"checkpoint-{best}" / "model.safetensors"
    saved, expected = load_file(result.output_dir / "model.safetensors"), load_file(checkpoint)
    assert saved.keys() == expected.keys()
    assert all(saved[name].equal(expected[name]) for name in saved)
    last = artifacts.latest_checkpoint(result.output_dir)
    assert last.name == f"checkpoint-{result.metrics['global_step']}"
    last_weights = load_file(last / "model.safetensors")
    assert any(not saved[name].equal(last_weights[name]) for name in saved)  # not simply the last step


@pytest.mark.slow
def test_history_marks_the_best_step(overfit_run):
    result, _, _ = overfit_run
    history = artifacts.read_json(result.output_dir / artifacts.HISTORY_FILE)
    marked = [entry for entry in history if entry.get("best")]
    assert [entry["step"] for entry in marked] == [result.metrics["best_step"]]
    assert "eval_loss" in marked[0]
