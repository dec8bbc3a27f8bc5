"""Predictions for new clips from a saved model: the submission's rows and columns, the same numbers the training
run computed, and bad input (missing columns, keys, foreign or outside model files) refused by name."""

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tui import cli
from engine.config import RunConfig
from engine.approaches import ensemble
from engine.errors import ConfigError, InputError, StorageError
from engine.pipeline import Session
from engine.predict import Prediction, mean_prediction, predict_files, predict_run, write_submission
from engine.store.models import export_model, load_model
from engine.store.predictions import load_predictions

TEXT = {"fname": str, "file": str, "labels": str}
RUNS = {"single": dict(label_mode="single"), "multi": dict(label_mode="multi"),
        "impute": dict(label_mode="single", bad_rows="impute"), "logreg": dict(label_mode="single", model="logreg")}


@pytest.fixture(scope="module")
def models(small_demo, tmp_path_factory):
    """A few-epoch model per RUNS entry, trained on the small demo: name → (record, models_dir, results_dir)."""
    folder = tmp_path_factory.mktemp("predict")
    session = Session(models_dir=folder / "models", results_dir=folder / "results", cache_dir=folder / "cache")
    config = RunConfig(embeddings=str(small_demo.embeddings), tabular=str(small_demo.tabular), epochs=3, bs=32,
                       lr=3e-3)
    return {name: (session.train(config.with_(**changes)), session.models_dir, session.results_dir)
            for name, changes in RUNS.items()}


@pytest.fixture(scope="module")
def test_tables(small_demo):
    return pd.read_csv(small_demo.test_embeddings, dtype=TEXT), pd.read_csv(small_demo.test_tabular, dtype=TEXT)


def predict(models, name, embeddings, tabular, **kw):
    record, models_dir, _ = models[name]
    return predict_files(record.model_path, embeddings, tabular, models_dir=models_dir, **kw)


def write_tables(folder, embeddings, tabular):
    folder.mkdir(exist_ok=True)
    embeddings.to_csv(folder / "emb.csv", index=False)
    tabular.to_csv(folder / "tab.csv", index=False)
    return folder / "emb.csv", folder / "tab.csv"


@pytest.mark.parametrize("name", ["single", "multi", "logreg"])
def test_submission_on_the_demo_test_files_has_every_clip_and_the_models_classes(models, name, small_demo,
                                                                                  test_tables, tmp_path):
    embeddings, tabular = test_tables
    prediction = predict(models, name, small_demo.test_embeddings, small_demo.test_tabular)
    path = write_submission(prediction, tmp_path / "out" / "submission.csv")

    submission = pd.read_csv(path, dtype={"fname": str})
    classes = load_model(models[name][0].model_path, models_dir=models[name][1]).vggtab.classes
    assert list(submission.columns) == ["fname", *classes]
    assert sorted(submission["fname"]) == sorted(set(embeddings["fname"]) & set(tabular["file"]))
    assert len(submission) == len(embeddings) and prediction.dropped == ()
    probs = submission[list(classes)].to_numpy()
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs, prediction.frame[list(classes)].to_numpy(), rtol=1e-6)
    if name != "multi":
        np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    else:
        assert prediction.label_mode == "multi" and probs.sum(axis=1).max() > 1.2  # independent sigmoids


def test_rows_the_audit_drops_are_listed_and_unmatched_clips_warned(models, test_tables, tmp_path):
    embeddings, tabular = (t.copy() for t in test_tables)
    nan_clip = tabular["file"].iloc[3]
    tabular.loc[3, "mel_std_2"] = np.nan
    lone_clip = embeddings["fname"].iloc[0]
    tabular = tabular[tabular["file"] != lone_clip]
    prediction = predict(models, "single", *write_tables(tmp_path, embeddings, tabular))

    assert [fname for fname, _ in prediction.dropped] == [nan_clip]
    assert "mel_std_2" in prediction.dropped[0][1]
    assert set(prediction.frame["fname"]) == set(embeddings["fname"]) - {nan_clip, lone_clip}
    assert any(lone_clip in warning for warning in prediction.warnings)


@pytest.mark.parametrize("name", list(RUNS))
def test_probabilities_equal_the_training_runs_for_the_same_clips(models, name, small_demo):
    record, _, results_dir = models[name]
    prediction = predict(models, name, small_demo.embeddings, small_demo.tabular)
    saved = load_predictions(results_dir, record.run_id)

    by_clip = prediction.frame.set_index("fname")
    assert list(by_clip.columns) == list(saved.classes)
    np.testing.assert_allclose(by_clip.loc[saved.keys].to_numpy(), saved.probs, rtol=0, atol=1e-6)
    nan_clips = [fname for fname, _ in prediction.dropped]
    if name == "impute":  # the demo's NaN clip is kept, its gaps filled with the training medians
        assert not nan_clips and any("training medians" in warning for warning in prediction.warnings)
    else:
        assert len(nan_clips) == 1 and nan_clips[0] not in by_clip.index


def test_a_missing_feature_column_is_an_input_error_naming_it(models, test_tables, tmp_path):
    embeddings, tabular = test_tables
    files = write_tables(tmp_path, embeddings.drop(columns=["emb_7"]), tabular.drop(columns=["cqt_mean_1"]))
    with pytest.raises(InputError, match="2 feature columns") as error:
        predict(models, "single", *files)
    assert "emb_7" in str(error.value) and "cqt_mean_1" in str(error.value)


def test_the_key_is_found_as_in_training_or_named(models, test_tables, tmp_path, small_demo):
    embeddings, tabular = test_tables
    files = write_tables(tmp_path, embeddings.rename(columns={"fname": "clip"}),
                         tabular.rename(columns={"file": "clip"}))
    with pytest.raises(InputError, match="key column"):
        predict(models, "single", *files)
    named = predict(models, "single", *files, key="clip")
    default = predict(models, "single", small_demo.test_embeddings, small_demo.test_tabular)
    pd.testing.assert_frame_equal(named.frame, default.frame)


def test_a_model_outside_models_dir_is_refused_unless_allowed(models, small_demo, tmp_path):
    record, _, _ = models["single"]
    outside = shutil.copy(record.model_path, tmp_path / "copied.pkl")
    files = (small_demo.test_embeddings, small_demo.test_tabular)
    with pytest.raises(StorageError, match="allow_outside=true"):
        predict_files(outside, *files, models_dir=models["single"][1])
    allowed = predict_files(outside, *files, models_dir=models["single"][1], allow_outside=True)
    assert len(allowed.frame) == len(pd.read_csv(small_demo.test_embeddings))


def test_a_fastai_model_vggtab_did_not_train_is_refused(tmp_path, small_demo):
    from engine.model import build_learner
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = np.arange(40) % 2
    learner = build_learner(x, y, x, y, n_classes=2, layers=(4,), ps=0.0, wd=0.0, bs=8, seed=0)
    path = export_model(learner, tmp_path / "models" / "plain.pkl")
    with pytest.raises(StorageError, match="vggtab did not train"):
        predict_files(path, small_demo.test_embeddings, small_demo.test_tabular, models_dir=tmp_path / "models")


def test_cli_predict_writes_the_submission_and_reports_it(models, small_demo, tmp_path, capsys):
    record, models_dir, _ = models["multi"]
    out = tmp_path / "submission.csv"
    code = cli.main(["predict", "--model", record.model_path, "--models-dir", str(models_dir),
                     "--embeddings", str(small_demo.test_embeddings), "--tabular", str(small_demo.test_tabular),
                     "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    rows = len(pd.read_csv(out))
    assert rows == len(pd.read_csv(small_demo.test_embeddings))
    assert f"Wrote {rows} clips" in printed and str(out) in printed and "0 clips dropped" in printed


def test_cli_predict_bad_input_exits_2_with_the_message(models, small_demo, tmp_path, capsys):
    record, _, _ = models["single"]
    code = cli.main(["predict", "--model", record.model_path, "--models-dir", str(tmp_path / "elsewhere"),
                     "--embeddings", str(small_demo.test_embeddings), "--tabular", str(small_demo.test_tabular),
                     "--out", str(tmp_path / "submission.csv")])
    captured = capsys.readouterr()
    assert code == 2 and "--allow-outside-models" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "submission.csv").exists()


def test_an_ensemble_predicts_the_mean_of_its_members_predictions(models, small_demo, tmp_path):
    (mlp, models_dir, results_dir), (logreg, _, _) = models["single"], models["logreg"]
    record = ensemble(results_dir, [mlp.run_id, logreg.run_id])
    files = (small_demo.test_embeddings, small_demo.test_tabular)
    members = [predict_files(r.model_path, *files, models_dir=models_dir) for r in (mlp, logreg)]

    prediction = predict_run(results_dir, record, *files, models_dir=models_dir)

    assert list(prediction.frame.columns) == list(members[0].frame.columns)
    assert list(prediction.frame["fname"]) == list(members[0].frame["fname"])
    classes = list(members[0].frame.columns[1:])
    np.testing.assert_array_equal(prediction.frame[classes].to_numpy(),
                                  np.mean([m.frame[classes].to_numpy() for m in members], axis=0))
    assert not np.array_equal(prediction.frame[classes].to_numpy(), members[0].frame[classes].to_numpy())
    nested = ensemble(results_dir, [record.run_id, mlp.run_id], name="nested")  # members may be ensembles
    np.testing.assert_allclose(predict_run(results_dir, nested, *files, models_dir=models_dir).frame[classes],
                               (prediction.frame[classes] + members[0].frame[classes]) / 2, rtol=1e-6)
    assert {mlp.model_path, logreg.model_path} <= set(prediction.sources)  # a submission never replaces them
    out = tmp_path / "submission.csv"  # the CLI (and the app, through the same Workbench) name the ensemble by id
    code = cli.main(["predict", "--model", record.run_id, "--results-dir", str(results_dir), "--models-dir",
                     str(models_dir), "--embeddings", str(files[0]), "--tabular", str(files[1]), "--out", str(out)])
    assert code == 0
    submission = pd.read_csv(out, dtype={"fname": str})
    assert submission.shape == prediction.frame.shape and list(submission["fname"]) == list(prediction.frame["fname"])
    np.testing.assert_allclose(submission[classes].to_numpy(), prediction.frame[classes].to_numpy(), rtol=1e-6)


def test_predict_run_of_a_single_run_is_its_model_and_an_unsaved_run_is_refused(models, small_demo):
    record, models_dir, results_dir = models["logreg"]
    files = (small_demo.test_embeddings, small_demo.test_tabular)
    pd.testing.assert_frame_equal(predict_run(results_dir, record, *files, models_dir=models_dir).frame,
                                  predict_files(record.model_path, *files, models_dir=models_dir).frame)
    with pytest.raises(ConfigError, match="Predicting needs a finished run with a saved model"):
        predict_run(results_dir, replace(record, model_path=""), *files, models_dir=models_dir)


def test_mean_prediction_keeps_the_clips_every_member_kept_matched_by_name():
    def member(a_by_clip, dropped=(), warnings=()):
        frame = pd.DataFrame({"fname": list(a_by_clip), "a": list(a_by_clip.values())})
        frame["b"] = 1 - frame["a"]
        return Prediction(frame=frame, dropped=dropped, warnings=warnings, label_mode="single")

    first = member({"x": 0.5, "y": 0.125, "z": 0.25}, warnings=("2 clips unmatched",))
    second = member({"z": 0.75, "x": 0.25}, dropped=(("y", "NaN in mel_std_2"),), warnings=("2 clips unmatched",))
    mean = mean_prediction([first, second])
    assert mean.frame.to_dict("list") == {"fname": ["x", "z"], "a": [0.375, 0.5], "b": [0.625, 0.5]}
    assert mean.dropped == (("y", "NaN in mel_std_2"),) and mean.warnings == ("2 clips unmatched",)
