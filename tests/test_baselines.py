"""Classical baselines through Session.train on the small demo, and the estimator helpers on small arrays."""

import threading
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from engine import approaches, baselines
from engine.config import RunConfig
from engine.errors import Cancelled, ConfigError
from engine.evaluate import diagnose
from engine.events import BatchEnded, EpochEnded, LRFinderReady, RunCancelled, RunFinished, StageDone
from engine.store.history import load_history
from engine.store.models import load_model
from engine.store.predictions import load_predictions


@pytest.fixture
def config(small_demo):
    return RunConfig(embeddings=str(small_demo.embeddings), tabular=str(small_demo.tabular), model="logreg")


@pytest.mark.parametrize("model", ["logreg", "linear_svm", "random_forest"])
def test_each_baseline_runs_through_the_session_well_above_random(session, config, tmp_path, model):
    record = session.train(config.with_(model=model))

    metrics = record.metrics
    assert record.status == "finished" and record.approach == f"both_{model}"
    assert metrics["val_accuracy"] > 4 * metrics["random_baseline"]  # 8 classes: random is 12.5 %
    assert metrics["ci_low"] < metrics["val_accuracy"] < metrics["ci_high"]
    assert record.num_params > 0
    if model == "random_forest":  # ~250 MB pickled: not saved, a seeded refit gives it back
        assert record.model_path == "" and not (tmp_path / "models").exists()
    else:
        assert record.model_path.startswith(str(tmp_path / "models")) and Path(record.model_path).is_file()
        assert isinstance(load_model(record.model_path, models_dir=tmp_path / "models"),
                          baselines.SavedBaseline)
        assert list(approaches.group_importance(session, record)) == ["emb", "stft", "mel", "cqt"]
    saved = load_predictions(tmp_path / "results", record.run_id)
    assert np.allclose(saved.probs.sum(axis=1), 1, atol=1e-5)
    assert (saved.probs.argmax(axis=1) == saved.targets).mean() == pytest.approx(metrics["val_accuracy"])
    assert [r.run_id for r in load_history(tmp_path / "results").records] == [record.run_id]
    kinds = {type(e) for e in session.events}
    assert RunFinished in kinds and not kinds & {LRFinderReady, EpochEnded}
    assert any(isinstance(e, StageDone) and e.stage == "fit" for e in session.events)
    (finished,) = [e for e in session.events if isinstance(e, RunFinished)]
    assert not any("dropout" in note or "LR" in note for note in finished.evaluation.diagnosis)  # MLP-only advice


def test_diagnosis_advice_fits_the_model():
    overfit = dict(accuracy=0.6, train_accuracy=1.0, random_baseline=0.1, majority_baseline=0.15)
    assert "dropout" in " ".join(diagnose(**overfit, model="mlp"))
    logreg = " ".join(diagnose(**overfit, model="logreg"))
    assert "overfitting" in logreg and "top-K" in logreg and "dropout" not in logreg
    assert not any("overfitting" in note for note in diagnose(**overfit, model="random_forest"))
    barely = dict(accuracy=0.11, train_accuracy=0.2, random_baseline=0.1, majority_baseline=0.15)
    assert "LR finder" in " ".join(diagnose(**barely, model="mlp"))
    assert "linearly separable" in " ".join(diagnose(**barely, model="linear_svm"))


def test_same_config_and_seed_give_the_same_predictions(session, config, tmp_path):
    first = session.train(config.with_(model="random_forest"))
    second = session.train(config.with_(model="random_forest"))
    a, b = (load_predictions(tmp_path / "results", r.run_id).probs for r in (first, second))
    assert np.array_equal(a, b)


def test_forest_grown_in_chunks_equals_one_fit_and_reports_progress():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 6)), rng.integers(0, 3, 120)
    events = []
    chunked = baselines.fit_baseline("random_forest", x, y, seed=3, report=events.append).estimator
    whole = RandomForestClassifier(n_estimators=baselines.FOREST_TREES, random_state=3).fit(x, y)

    assert np.array_equal(chunked.predict_proba(x), whole.predict_proba(x))
    progress = [e for e in events if isinstance(e, BatchEnded)]
    assert [e.batch for e in progress] == list(range(1, progress[0].n_batches + 1))


def test_probabilities_cover_classes_absent_from_train():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 4)), np.repeat([0, 2, 3], 20)  # class 1 never seen
    for model in ("logreg", "linear_svm"):
        fitted = baselines.fit_baseline(model, x, y, seed=0).estimator
        probs = baselines.predict_proba(fitted, x, n_classes=4)
        assert probs.shape == (60, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert (probs[:, 1] == 0).all()
        assert np.array_equal(probs.argmax(axis=1), fitted.predict(x))


def test_multi_label_is_refused_before_any_data_is_read(session, config):
    with pytest.raises(ConfigError, match="label_mode='multi'"):
        session.train(config.with_(embeddings="missing.csv", label_mode="multi"))


def test_a_cancel_before_the_fit_is_recorded_as_cancelled(session, config, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        session.train(config.with_(model="random_forest"), cancel=cancel)
    cancelled = [e for e in session.events if isinstance(e, RunCancelled)]
    assert cancelled and cancelled[0].record.message == "Cancelled before the random_forest fit finished."
    assert [r.status for r in load_history(tmp_path / "results").records] == ["cancelled"]
