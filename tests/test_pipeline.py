"""The real pipeline end to end on the small generated demo set, checked against pandas computed independently."""

import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from engine.config import RunConfig
from engine.errors import Cancelled, ConfigError
from engine.events import BatchEnded, DatasetSummarised, EpochEnded, LRFinderReady, RunCancelled, RunFinished
from engine.store.history import load_history
from engine.store.predictions import load_predictions
from tests.conftest import edit_keeping_size_and_mtime

NOTEBOOK_COLUMNS = ["timestamp", "model", "features", "vggish_features", "tabular_features", "num_classes",
                    "train_samples", "val_samples", "epochs", "learning_rate", "training_time_sec", "val_accuracy",
                    "error_rate", "num_params"]


@pytest.fixture(scope="module")
def demo_frames(small_demo):
    embeddings = pd.read_csv(small_demo.embeddings)
    tabular = pd.read_csv(small_demo.tabular)
    merged = embeddings.merge(tabular, left_on="fname", right_on="file")
    return embeddings, tabular, merged


@pytest.fixture
def config(small_demo):
    return RunConfig(embeddings=str(small_demo.embeddings), tabular=str(small_demo.tabular), epochs=4, bs=32)


def test_summary_matches_an_independent_merge(session, config, demo_frames):
    embeddings, tabular, merged = demo_frames
    summary = session.prepare(config).summary

    assert (summary.rows_embeddings, summary.rows_tabular) == (len(embeddings), len(tabular))
    assert summary.matched == len(merged)
    assert summary.unmatched_embeddings == len(set(embeddings.fname) - set(tabular.file))
    assert summary.unmatched_tabular == len(set(tabular.file) - set(embeddings.fname))
    label_counts = merged["labels"].str.split(",").str.len().value_counts().to_dict()
    assert summary.label_counts == label_counts
    assert isinstance(session.events[-1], DatasetSummarised)


def test_the_features_step_says_in_the_summary_what_it_adjusted(session, config):
    assert session.prepare(config).summary.feature_notes == ()
    summary = session.prepare(config.with_(features="tabular", pca=10_000)).summary
    assert len(summary.feature_notes) == 1 and "pca=10000 is more than the data allows" in summary.feature_notes[0]
    assert f"using {summary.n_features} components" in summary.feature_notes[0]


def test_the_nan_row_is_found_named_and_never_reaches_the_model(session, config, demo_frames):
    _, _, merged = demo_frames
    features = merged.drop(columns=["fname", "file", "labels"])
    nan_rows = set(merged.loc[features.isna().any(axis=1), "fname"])
    assert nan_rows, "the demo data must carry the notebook's NaN row"

    prepared = session.prepare(config)

    assert nan_rows <= {fname for fname, _ in prepared.summary.dropped}
    assert not nan_rows & set(prepared.keys)
    assert np.isfinite(prepared.x_train).all() and np.isfinite(prepared.x_valid).all()


def test_split_is_stratified_20_percent_per_class(session, config):
    prepared = session.prepare(config)
    valid_share = len(prepared.valid_idx) / len(prepared.keys)
    assert valid_share == pytest.approx(0.2, abs=0.01)
    for label in np.unique(prepared.targets):
        in_class = prepared.targets == label
        expected = in_class.sum() * 0.2
        assert abs(in_class[prepared.valid_idx].sum() - expected) <= 1.5
    assert not set(prepared.train_idx) & set(prepared.valid_idx)


def test_lr_finder_gives_four_finite_suggestions_and_a_curve(session, config):
    found = session.find_lr(config)
    assert set(found.suggestions) == {"valley", "slide", "minimum", "steep"}
    assert all(1e-7 < lr < 10 for lr in found.suggestions.values())
    assert all(lr == float(f"{lr:.3g}") for lr in found.suggestions.values())  # no float32 noise in names
    assert len(found.lrs) == len(found.losses) > 20
    assert np.all(np.diff(found.lrs) > 0)
    assert isinstance(session.events[-1], LRFinderReady)


def test_training_learns_saves_and_records(session, config, tmp_path):
    record = session.train(config.with_(lr=3e-3))

    epochs = [e for e in session.events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in epochs] == [1, 2, 3, 4]
    batches = [e for e in session.events if isinstance(e, BatchEnded)]
    assert len(batches) == 4 * batches[0].n_batches
    finished = session.events[-1]
    assert isinstance(finished, RunFinished) and finished.record == record
    evaluation = finished.evaluation
    assert evaluation.accuracy > 3 * evaluation.random_baseline
    assert evaluation.ci_low < evaluation.accuracy < evaluation.ci_high
    assert record.status == "finished" and record.config["lr"] == 3e-3
    assert record.num_params > 0 and len(record.history) == 4

    results_csv = pd.read_csv(record.results_csv)
    assert set(NOTEBOOK_COLUMNS) <= set(results_csv.columns)
    assert results_csv["val_accuracy"].iloc[0] == pytest.approx(evaluation.accuracy)

    history = load_history(tmp_path / "results")
    assert [r.run_id for r in history.records] == [record.run_id]


def test_exported_model_reloads_and_predicts_the_same_classes(session, config):
    from fastai.learner import load_learner

    from engine.model import predict_proba
    record = session.train(config.with_(lr=3e-3, epochs=2))
    prepared = session.prepare(config)

    learner = load_learner(record.model_path)
    probs = predict_proba(learner.model, prepared.x_valid, multi_label=False)
    saved = load_predictions(session.results_dir, record.run_id)
    assert learner.vggtab.classes == prepared.classes
    np.testing.assert_array_equal(probs.argmax(axis=1), saved.probs.argmax(axis=1))


def test_same_config_and_seed_give_the_same_numbers(session, config):
    first = session.train(config.with_(lr=3e-3, epochs=2))
    second = session.train(config.with_(lr=3e-3, epochs=2))
    assert first.metrics["val_accuracy"] == second.metrics["val_accuracy"]
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]


def test_cancel_stops_between_batches_and_is_recorded(session, config, tmp_path):
    cancel = threading.Event()

    def cancel_after_first_epoch(event):
        session.events.append(event)
        if isinstance(event, EpochEnded):
            cancel.set()
    session.report = cancel_after_first_epoch

    with pytest.raises(Cancelled):
        session.train(config.with_(lr=3e-3, epochs=10), cancel=cancel)

    assert isinstance(session.events[-1], RunCancelled) and session.events[-1].epochs_done == 1
    assert not list((tmp_path / "models").glob("*.pkl"))
    [record] = load_history(tmp_path / "results").records
    assert record.status == "cancelled" and len(record.history) == 1


def test_batch_size_larger_than_the_train_set_is_refused(session, config):
    with pytest.raises(ConfigError, match="Batch size 100000"):
        session.train(config.with_(bs=100_000, lr=1e-3))


def test_feature_sets_share_rows_and_split(session, config):
    both = session.prepare(config)
    embeddings_only = session.prepare(config.with_(features="embeddings"))
    assert both.split_id == embeddings_only.split_id
    assert embeddings_only.x_train.shape[1] == 128 < both.x_train.shape[1]


def test_an_edit_keeping_size_and_mtime_is_seen_by_a_running_session(session, small_demo, tmp_path, monkeypatch):
    from engine import load
    monkeypatch.setattr(load, "SETTLED_NS", 0)  # remember fingerprints at once, as for files untouched for long
    embeddings = tmp_path / "embeddings.csv"
    shutil.copy(small_demo.embeddings, embeddings)
    config = RunConfig(embeddings=str(embeddings), tabular=str(small_demo.tabular))
    before = session.prepare(config).classes
    renamed = before[0][:-1] + ("Z" if before[0][-1] != "Z" else "Y")

    edit_keeping_size_and_mtime(embeddings, before[0], renamed)  # each line's first mention, quoted or not

    after = session.prepare(config).classes
    assert renamed in after and before[0] not in after


def test_cache_keys_follow_each_settings_declared_step():
    from engine.pipeline import data_key, features_key, model_key
    base = RunConfig()
    assert data_key(base.with_(features="tabular", pca=4)) == data_key(base)  # feature sets share the clean data
    assert data_key(base.with_(bad_rows="impute")) != data_key(base)
    assert features_key(base.with_(layers=(400, 200))) == features_key(base)
    assert features_key(base.with_(select_k=10)) != features_key(base)
    # The LR finder's cache: the model and what it trains on, not the schedule the run uses afterwards.
    assert model_key(base.with_(epochs=3, lr=3e-3, threads=1, name="x")) == model_key(base)
    for changed in (dict(bs=32), dict(seed=1), dict(sampling="replacement"), dict(ps=0.5), dict(valid_pct=0.3)):
        assert model_key(base.with_(**changed)) != model_key(base), changed
