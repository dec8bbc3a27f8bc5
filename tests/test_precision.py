"""Training precision: bf16 compute with fp32 master weights where the CPU computes bf16 natively, fp32 elsewhere."""

import sys
import threading

import numpy as np
import pytest
import torch

from engine import model
from engine.errors import Cancelled, TrainingDiverged
from engine.events import BatchEnded
from engine.model import build_learner, predict_proba
from engine.train import fit


def arrays(n=320, d=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = (rng.normal(size=(n, d)) + 3 * np.eye(classes, d)[y]).astype(np.float32)
    return x, y


def learner(precision, x, y, seed=1):
    return build_learner(x[:256], y[:256], x[256:], y[256:], n_classes=4, layers=(32, 16), ps=0.0, wd=0.01, bs=32,
                         seed=seed, precision=precision)


def test_auto_picks_bf16_only_where_the_probe_finds_it_fast(monkeypatch):
    monkeypatch.setattr(model, "bf16_is_fast", lambda: False)
    assert model.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(model, "bf16_is_fast", lambda: True)
    assert model.resolve_precision("auto") == "bf16"
    assert model.resolve_precision("fp32") == "fp32" and model.resolve_precision("bf16") == "bf16"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the CPU flags from /proc/cpuinfo")
def test_auto_resolves_per_this_cpu():
    """Native bf16 (AVX512-BF16 or AMX) makes bf16 matmuls ~2x faster; without it oneDNN emulates them, slower."""
    with open("/proc/cpuinfo") as info:
        flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    native = bool({"avx512_bf16", "amx_bf16"} & set(flags)) and torch.backends.mkldnn.is_available()
    assert model.resolve_precision("auto") == ("bf16" if native else "fp32")


def test_both_precisions_learn_and_keep_float32_weights_and_predictions():
    x, y = arrays()
    fitted = {}
    for precision in ("fp32", "bf16"):
        run = learner(precision, x, y)
        history = fit(run, epochs=4, lr=1e-2, report=lambda event: None)
        probs = predict_proba(run.model, x[256:], multi_label=False)
        assert probs.dtype == np.float32 and probs.shape == (64, 4)
        assert history[-1]["accuracy"] == pytest.approx(float((probs.argmax(1) == y[256:]).mean()))
        assert history[-1]["accuracy"] > 0.75  # chance is 0.25
        assert all(p.dtype == torch.float32 for p in run.model.parameters())
        assert not torch.is_autocast_enabled("cpu")
        fitted[precision] = torch.cat([p.detach().flatten() for p in run.model.parameters()])
    # bf16 really computed in bf16: the weights differ in rounding, but not by much.
    assert not torch.equal(fitted["fp32"], fitted["bf16"])
    assert torch.allclose(fitted["fp32"], fitted["bf16"], atol=0.1)


def test_bf16_computes_the_training_forward_in_bf16_and_validation_in_fp32():
    x, y = arrays()
    run = learner("bf16", x, y)
    seen = []
    first_layer = run.model.layers[0][0]
    hook = first_layer.register_forward_hook(lambda module, args, out: seen.append((module.training, out.dtype)))
    fit(run, epochs=1, lr=1e-3, report=lambda event: None)
    hook.remove()
    assert {dtype for training, dtype in seen if training} == {torch.bfloat16}
    assert {dtype for training, dtype in seen if not training} == {torch.float32}


@pytest.mark.parametrize("stop", ["cancel", "diverge"])
def test_a_stopped_bf16_fit_leaves_autocast_off(stop):
    x, y = arrays()
    if stop == "diverge":
        x[3, 0] = np.inf
    run = learner("bf16", x, y)
    cancel = threading.Event()

    def report(event):
        if isinstance(event, BatchEnded) and event.batch == 3:
            cancel.set()

    with pytest.raises(Cancelled if stop == "cancel" else TrainingDiverged):
        fit(run, epochs=3, lr=1e-3, report=report, cancel=cancel)
    assert not torch.is_autocast_enabled("cpu")


def test_a_run_records_its_resolved_precision_and_the_same_results_either_way(small_demo, session, tmp_path):
    from engine.config import RunConfig
    from engine.store.history import load_history
    base = RunConfig(embeddings=str(small_demo.embeddings), tabular=str(small_demo.tabular), epochs=3, lr=3e-3)
    records = {precision: session.train(base.with_(precision=precision)) for precision in ("fp32", "bf16", "auto")}
    assert {p: r.config["precision"] for p, r in records.items()} == {
        "fp32": "fp32", "bf16": "bf16", "auto": model.resolve_precision("auto")}
    fp32, bf16 = records["fp32"], records["bf16"]
    assert fp32.metrics.keys() == bf16.metrics.keys() and fp32.config.keys() == bf16.config.keys()
    assert [row.keys() for row in fp32.history] == [row.keys() for row in bf16.history]
    assert abs(fp32.metrics["val_accuracy"] - bf16.metrics["val_accuracy"]) < 0.1
    loaded = load_history(tmp_path / "results").records
    assert [r.config["precision"] for r in loaded] == ["fp32", "bf16", model.resolve_precision("auto")]
    tables = sorted((tmp_path / "results").glob("*.csv"))
    headers = {path.read_text().splitlines()[0] for path in tables if "epochs" not in path.name}
    assert len(tables) >= 6 and len(headers) <= 2  # one header per kind of table, whatever the precision
