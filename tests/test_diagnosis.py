"""The verdict of a run tells divergence from the loss trajectory, with the LR, and never calls it healthy."""

import pytest

from engine.config import RunConfig
from engine.evaluate import chance_loss, diagnose, divergence
from engine.events import RunFinished


@pytest.mark.parametrize("epochs", [8, 2])
def test_a_run_at_lr_10_is_diagnosed_as_diverged_with_its_lr(session, small_demo, epochs):
    config = RunConfig(embeddings=str(small_demo.embeddings), tabular=str(small_demo.tabular), lr=10.0,
                       epochs=epochs, wd=0.0, bs=32)
    session.train(config)

    [finished] = [e for e in session.events if isinstance(e, RunFinished)]
    losses = [row["train_loss"] for row in finished.record.history]
    assert max(losses) > 10 * chance_loss(len(finished.evaluation.per_class_accuracy), multi_label=False)  # really blew up
    [verdict] = finished.evaluation.diagnosis
    assert verdict.startswith("Diverged at LR 10: ") and "LR finder's valley" in verdict and "(1)" in verdict
    assert "Healthy" not in verdict and "raise" not in verdict


def test_a_healthy_run_is_not_called_diverged(session, small_demo):
    config = RunConfig(embeddings=str(small_demo.embeddings), tabular=str(small_demo.tabular), lr=3e-3,
                       epochs=4, bs=32)
    session.train(config)
    [finished] = [e for e in session.events if isinstance(e, RunFinished)]
    assert not any(note.startswith("Diverged") for note in finished.evaluation.diagnosis)


def epochs(*pairs):
    return [dict(train_loss=train, valid_loss=valid) for train, valid in pairs]


@pytest.mark.parametrize("history, diverged", [
    (epochs((2.0, 1.8), (1.2, 1.0), (0.6, 1.4), (0.3, 2.9), (0.1, 4.5)), False),  # overfitting: valid loss rises
    (epochs((2.1, 2.0), (2.3, 2.2), (1.9, 1.8)), False),  # one-cycle warm-up bump
    (epochs((1.2, 5.9), (3.4, 43.8), (9.7, 73.3), (9.2, 2.0)), True),  # rose far above its lowest point
    (epochs((2.0, 1.9), (1.5, 80.0)), True),  # valid loss exploded
    (epochs((900.0, 1e6),), True),  # one epoch, far above chance from the start
])
def test_divergence_is_read_from_the_loss_trajectory(history, diverged):
    assert bool(divergence(history, 0.5, chance_loss(8, multi_label=False))) == diverged


def test_a_diverged_verdict_replaces_the_accuracy_advice():
    notes = diagnose(0.14, 0.15, 0.125, 0.2, divergence="Diverged at LR 10: …")
    assert notes == ["Diverged at LR 10: …"]
    assert "raise" in diagnose(0.14, 0.15, 0.125, 0.2)[0]  # without divergence, the barely-learned advice
