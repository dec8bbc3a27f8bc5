"""The training guards, on a learner built directly from arrays."""

import numpy as np
import pytest
import torch

from engine.errors import TrainingDiverged
from engine.model import build_learner, count_params
from engine.store.history import load_history
from engine.train import check_finite_inputs, fit


def arrays(n=256, d=20, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = (rng.normal(size=(n, d)) + 2 * np.eye(classes, d)[y]).astype(np.float32)
    return x, y


def test_notebook_architecture_has_the_notebooks_parameter_count():
    x, y = arrays(n=128, d=2602)
    learner = build_learner(x, y, x[:32], y[:32], n_classes=74, layers=(200, 100), ps=0.0, wd=0.01, bs=64, seed=1)
    assert count_params(learner) == 553_678


def test_a_non_finite_loss_stops_training_at_once_and_blames_the_features():
    x, y = arrays()
    x[5, 3] = np.inf  # what the notebook's NaN row did to every batch that held it
    learner = build_learner(x, y, x[:64], y[:64], n_classes=4, layers=(16,), ps=0.0, wd=0.0, bs=256, seed=1)
    epochs_seen = []
    with pytest.raises(TrainingDiverged, match="epoch 1, batch 1") as error:
        fit(learner, epochs=20, lr=1e-3, report=epochs_seen.append)
    assert "NaN/inf features" in error.value.hint
    assert not [e for e in epochs_seen if type(e).__name__ == "EpochEnded"]


def test_finite_inputs_check_names_the_rows():
    x, _ = arrays(n=10)
    x[[2, 7], 0] = np.nan
    keys = np.array([f"clip{i}.wav" for i in range(10)])
    with pytest.raises(TrainingDiverged, match="clip2.wav, clip7.wav"):
        check_finite_inputs(x, keys, "train")


def test_sampling_with_replacement_repeats_rows_and_shuffle_does_not():
    from engine.model import TensorLoader
    import torch
    x = torch.arange(100, dtype=torch.float32).unsqueeze(1)
    y = torch.zeros(100, dtype=torch.long)
    shuffled = torch.cat([b[1] for b in TensorLoader(x, y, bs=10, train=True, sampling="shuffle")]).flatten()
    drawn = torch.cat([b[1] for b in TensorLoader(x, y, bs=10, train=True, sampling="replacement")]).flatten()
    assert sorted(shuffled.tolist()) == list(range(100))
    assert len(set(drawn.tolist())) < 100


def test_label_smoothing_is_one_setting_from_the_cli_to_the_loss(tmp_path, tiny_demo, run_cli):
    """The example of adding a run setting: declared once in engine.config, used once in engine.model."""
    x, y = arrays()
    smoothed = build_learner(x, y, x, y, n_classes=4, layers=(8,), ps=0.0, wd=0.01, bs=32, seed=0,
                             label_smoothing=0.1)
    plain = build_learner(x, y, x, y, n_classes=4, layers=(8,), ps=0.0, wd=0.01, bs=32, seed=0)
    logits, targets = torch.tensor([[20.0, 0, 0, 0]]), torch.tensor([0])
    assert float(plain.loss_func(logits, targets)) < 1e-6  # a confident right answer costs nothing …
    assert float(smoothed.loss_func(logits, targets)) > 1.0  # … unless the targets are smoothed

    outcome = run_cli("run", "--embeddings", str(tiny_demo.embeddings), "--tabular", str(tiny_demo.tabular),
                      "--results-dir", str(tmp_path / "results"), "--models-dir", str(tmp_path / "models"),
                      "--epochs", "1", "--bs", "8", "--lr", "1e-3", "--label-smoothing", "0.1")
    assert outcome.code == 0, outcome.err
    [record] = load_history(tmp_path / "results").records
    assert record.config["label_smoothing"] == 0.1
    assert run_cli("run", "--label-smoothing", "0.9").err.startswith("vggtab: Setting --label-smoothing=0.9")
