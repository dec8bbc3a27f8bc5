"""Ablations, ensembles, paired tests, k-fold and group importance on the small demo, through the real Session."""

import shutil
import subprocess
import sys
import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from engine import approaches, stats
from engine.config import RunConfig
from engine.errors import Cancelled, ConfigError, StorageError
from engine.evaluate import correct_per_clip
from engine.events import RunFailed, StageDone
from engine.features import FeatureTransform
from engine.pipeline import Session
from engine.store.history import load_history
from engine.store.predictions import load_predictions
from engine.workbench import Workbench


def base_config(demo, **changes) -> RunConfig:
    return RunConfig(embeddings=str(demo.embeddings), tabular=str(demo.tabular), epochs=3, bs=32, lr=3e-3,
                     **changes)


@pytest.fixture(scope="module")
def ablation(small_demo, tmp_path_factory):
    """One MLP ablation (embeddings, tabular, both) shared by the tests that read its saved runs."""
    folder = tmp_path_factory.mktemp("ablation")
    events = []
    session = Session(events.append, models_dir=folder / "models", results_dir=folder / "results")
    records = approaches.run_queue(session, approaches.ablation_configs(base_config(small_demo)))
    return session, records, events


def by_features(records):
    return {r.config["features"]: r for r in records}


def test_ablation_configs_differ_only_in_features():
    base = RunConfig(layers=(400, 200, 100), seed=7, split_seed=3, select_k=10, name="deep")
    configs = approaches.ablation_configs(base)
    assert [c.features for c in configs] == ["embeddings", "tabular", "both"]
    assert [c.approach for c in configs] == ["deep embeddings", "deep tabular", "deep both"]
    assert {c.with_(features="both", name="") for c in configs} == {base.with_(name="")}
    with_groups = approaches.ablation_configs(RunConfig(), groups=True)
    assert [c.features for c in with_groups] == ["embeddings", "tabular", "both", "emb", "stft", "mel", "cqt"]
    assert len({c.approach for c in with_groups}) == 7


def test_ablation_gives_three_rows_with_intervals_on_one_split_and_a_verdict(ablation):
    session, records, _ = ablation
    assert [r.config["features"] for r in records] == ["embeddings", "tabular", "both"]
    assert len({r.split_id for r in records}) == 1
    for record in records:
        m = record.metrics
        assert record.status == "finished"
        assert 0 <= m["ci_low"] < m["val_accuracy"] < m["ci_high"] <= 1
        assert (m["ci_low"], m["ci_high"]) == pytest.approx(
            stats.wilson_interval(round(m["val_accuracy"] * m["val_samples"]), m["val_samples"]))
    comparison = approaches.ablation_comparison(session.results_dir, records)
    assert comparison.run_a.config["features"] == "both" and comparison.run_b.config["features"] == "embeddings"
    assert "both_200-100" in comparison.verdict and "embeddings_200-100" in comparison.verdict
    assert ("within noise" in comparison.verdict) == (comparison.test.mid_p >= 0.05)


def test_compare_is_mcnemar_on_the_saved_per_clip_results(ablation):
    session, records, _ = ablation
    runs = by_features(records)
    comparison = approaches.compare(session.results_dir, runs["tabular"].run_id, runs["both"].run_id)

    a = load_predictions(session.results_dir, runs["tabular"].run_id)
    b = load_predictions(session.results_dir, runs["both"].run_id)
    b_rows = {key: i for i, key in enumerate(b.keys)}
    order = [b_rows[key] for key in a.keys]
    expected = stats.mcnemar(correct_per_clip(a.probs, a.targets),
                             correct_per_clip(b.probs[order], b.targets[order]))
    assert comparison.test == expected
    assert comparison.n_clips == runs["both"].metrics["val_samples"]
    assert comparison.accuracy_b == pytest.approx(runs["both"].metrics["val_accuracy"])


def test_ensemble_accuracy_equals_the_average_of_the_two_saved_probability_arrays(ablation):
    session, records, _ = ablation
    runs = by_features(records)
    pair = approaches.default_ensemble_members(load_history(session.results_dir).records)
    assert pair == [runs["embeddings"].run_id, runs["tabular"].run_id]

    record = approaches.ensemble(session.results_dir, pair)

    a, b = (load_predictions(session.results_dir, run_id) for run_id in pair)
    b_rows = {key: i for i, key in enumerate(b.keys)}
    order = [b_rows[key] for key in a.keys]
    by_hand = (((a.probs + b.probs[order]) / 2).argmax(axis=1) == a.targets).mean()
    assert record.metrics["val_accuracy"] == pytest.approx(by_hand)
    assert record.metrics["ci_low"] < by_hand < record.metrics["ci_high"]
    assert record.split_id == runs["both"].split_id and record.config["members"] == pair
    assert load_history(session.results_dir).records[-1].run_id == record.run_id
    saved = load_predictions(session.results_dir, record.run_id)
    assert (saved.probs.argmax(axis=1) == saved.targets).mean() == pytest.approx(by_hand)
    hits = saved.probs.argmax(axis=1) == saved.targets
    assert record.per_class_accuracy == {name: pytest.approx(hits[saved.targets == c].mean())
                                         for c, name in enumerate(saved.classes) if (saved.targets == c).any()}


def test_rerunning_an_ensemble_reruns_its_members_exactly_and_averages_them_again(ablation, tmp_path):
    session, records, _ = ablation
    shutil.copytree(session.results_dir, tmp_path / "results")  # its own history: the reruns add rows
    events = []
    again_session = Session(events.append, models_dir=tmp_path / "models", results_dir=tmp_path / "results")
    runs = by_features(records)
    pair = [runs["embeddings"], runs["tabular"]]
    original = approaches.ensemble(again_session.results_dir, [r.run_id for r in pair], name="pair")

    again = approaches.rerun(again_session, original)

    members = approaches.ensemble_members(again_session.results_dir, again)
    assert approaches.is_ensemble(again) and again.approach == "pair" and again.run_id != original.run_id
    assert not {m.run_id for m in members} & {r.run_id for r in pair}
    assert [m.config for m in members] == [r.config for r in pair]
    assert [m.metrics["val_accuracy"] for m in members] == [r.metrics["val_accuracy"] for r in pair]
    assert again.metrics["val_accuracy"] == original.metrics["val_accuracy"]
    assert any(isinstance(e, StageDone) and e.stage == "ensemble" for e in events)

    kept = approaches.rerun(again_session, again, reuse=[members[1].run_id])
    assert kept.config["members"][1] == members[1].run_id
    assert kept.config["members"][0] not in (members[0].run_id, pair[0].run_id)
    history = load_history(again_session.results_dir).records
    assert [r.approach for r in history[-6:]] == ["pair", "embeddings_200-100", "tabular_200-100", "pair",
                                                  "embeddings_200-100", "pair"]


def test_the_workbench_reruns_an_ensemble_named_by_its_id(ablation, tmp_path):
    session, records, _ = ablation
    shutil.copytree(session.results_dir, tmp_path / "results")
    bench = Workbench(results_dir=tmp_path / "results", models_dir=tmp_path / "models")
    runs = by_features(records)
    ids = [runs["embeddings"].run_id, runs["tabular"].run_id]
    original = bench.ensemble(ids, name="pair")
    again = bench.rerun(bench.find_run(original.run_id), reuse=ids)  # nothing to train: members taken as they are
    assert again.config["members"] == ids and again.run_id != original.run_id and again.approach == "pair"
    assert again.metrics["val_accuracy"] == original.metrics["val_accuracy"]


def test_an_ensemble_whose_members_are_not_in_the_history_names_them(ablation, tmp_path):
    _, records, _ = ablation
    record = replace(records[2], config={"model": "ensemble", "members": [records[0].run_id, records[1].run_id]})
    with pytest.raises(StorageError, match=records[0].run_id):
        approaches.ensemble_members(tmp_path, record)  # an empty results folder


def test_ensemble_refuses_one_run_and_unknown_or_repeated_runs(ablation):
    session, records, _ = ablation
    run_id = records[0].run_id
    with pytest.raises(ConfigError, match="at least two"):
        approaches.ensemble(session.results_dir, [run_id])
    with pytest.raises(ConfigError, match="given twice"):
        approaches.ensemble(session.results_dir, [run_id, run_id])
    with pytest.raises(ConfigError, match="'nope'"):
        approaches.ensemble(session.results_dir, [run_id, "nope"])


def test_runs_on_different_splits_are_refused(ablation, small_demo):
    session, records, _ = ablation
    other = session.train(base_config(small_demo, model="logreg", split_seed=7))
    assert other.split_id != records[0].split_id
    with pytest.raises(ConfigError, match="different clips") as refused:
        approaches.compare(session.results_dir, records[0].run_id, other.run_id)
    assert records[0].split_id in str(refused.value) and other.split_id in str(refused.value)
    with pytest.raises(ConfigError, match="different clips"):
        approaches.ensemble(session.results_dir, [records[0].run_id, other.run_id])


def test_runs_are_found_by_id_start_or_approach_name(ablation):
    session, records, _ = ablation
    history = load_history(session.results_dir).records
    both = by_features(records)["both"]
    assert approaches.find_run(history, both.run_id) == both
    assert approaches.find_run(history, both.run_id[:-1]) == both
    assert approaches.find_run(history, "both_200-100") == both
    fold_run = replace(both, run_id="99999999_999999_abcdef", config={**both.config, "fold": 0}, split_id="x")
    assert approaches.find_run(history + [fold_run], "both_200-100") == both
    assert approaches.find_run(history, both.short_id) == both  # the id the results table shows
    with pytest.raises(ConfigError, match="from the results table"):
        approaches.find_run(history, "zzz")


def test_input_groups_of_a_pca_transform_put_the_components_in_one_group():
    rng = np.random.default_rng(0)
    columns = ["emb_0", "emb_1", "stft_mean_0", "mel_std_0", "cqt_mean_0"]
    frame = pd.DataFrame(rng.normal(size=(20, len(columns))), columns=columns)
    transform = FeatureTransform(columns, pca=2).fit(frame, np.arange(20) % 2)
    groups = approaches.input_groups(transform.get_feature_names_out())
    assert {group: list(positions) for group, positions in groups.items()} == {"emb": [0, 1], "pca": [2, 3]}


def test_group_importance_of_the_both_run_is_seeded_and_finds_the_embeddings(ablation):
    session, records, _ = ablation
    both = by_features(records)["both"]
    drops = approaches.group_importance(session, both)

    assert list(drops) == ["emb", "stft", "mel", "cqt"]
    assert all(-1 <= d <= 1 for d in drops.values())
    assert drops["emb"] > 0.1  # the demo's embeddings carry most of the signal
    assert approaches.group_importance(session, both) == drops
    with pytest.raises(ConfigError, match="saved model"):  # e.g. a random forest run
        approaches.group_importance(session, replace(both, model_path=""))


def test_leakage_the_fit_ignores_valid_values_and_follows_train_values(small_demo, tmp_path):
    """select_k and PCA through the Session: editing only valid rows' tabular values leaves the fitted transform
    unchanged; editing train rows changes it (a planted class-signal column gets selected)."""
    config = base_config(small_demo, select_k=6, pca=3, model="logreg")
    session = Session(results_dir=tmp_path / "r")
    original = session.prepare(config)
    probe = session.clean_data(config).labelled.frame  # fixed rows to push through each fitted transform
    tabular = pd.read_csv(small_demo.tabular)
    valid_keys = set(original.keys[original.valid_idx])
    train_keys = list(original.keys[original.train_idx])
    columns = [c for c in tabular.columns if c.startswith(("stft_", "mel_", "cqt_"))]
    unselected = next(c for c in columns if c not in original.transform.input_columns_)

    def prepared_with(frame: pd.DataFrame, name: str):
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        return Session(results_dir=tmp_path / "r").prepare(config.with_(tabular=str(path)))

    in_valid = tabular["file"].isin(valid_keys)
    valid_edited = tabular.copy()
    valid_edited.loc[in_valid, columns] *= 3.0
    valid_edited.loc[in_valid, unselected] = np.arange(in_valid.sum()) * 100.0
    same = prepared_with(valid_edited, "valid_edited")
    assert same.split_id == original.split_id
    assert same.transform.input_columns_ == original.transform.input_columns_
    assert np.array_equal(same.x_train, original.x_train)
    assert np.array_equal(same.transform.transform(probe), original.transform.transform(probe))

    label_of = dict(zip(original.keys, original.targets))
    in_train = tabular["file"].isin(train_keys)
    train_edited = tabular.copy()
    train_edited.loc[in_train, unselected] = [label_of[k] * 50.0 for k in tabular.loc[in_train, "file"]]
    changed = prepared_with(train_edited, "train_edited")
    assert changed.split_id == original.split_id
    assert unselected in changed.transform.input_columns_
    assert not np.allclose(changed.transform.transform(probe), original.transform.transform(probe))


def test_kfold_folds_are_disjoint_cover_every_row_once_and_are_stratified(small_demo, tmp_path):
    session = Session(results_dir=tmp_path / "results", models_dir=tmp_path / "models")
    config = base_config(small_demo, model="logreg")
    result = approaches.kfold(session, config, n_folds=3)

    assert [r.config["fold"] for r in result.records] == [0, 1, 2]
    assert len({r.split_id for r in result.records}) == 3
    assert (result.mean, result.sd) == pytest.approx(stats.mean_sd(result.accuracies))
    assert result.accuracies == tuple(r.metrics["val_accuracy"] for r in result.records)
    folds = [session.prepare(config.with_(fold=k, n_folds=3)) for k in range(3)]
    valid = np.concatenate([f.valid_idx for f in folds])
    assert np.array_equal(np.sort(valid), np.arange(len(folds[0].keys)))  # smallest class has 3 clips: all split
    targets = folds[0].targets
    for label in np.unique(targets):
        per_fold = [(targets[f.valid_idx] == label).sum() for f in folds]
        assert max(per_fold) - min(per_fold) <= 1


def test_kfold_and_queue_stop_on_cancel(small_demo, tmp_path):
    session = Session(results_dir=tmp_path / "results", models_dir=tmp_path / "models")
    cancel = threading.Event()
    cancel.set()
    config = base_config(small_demo, model="logreg")
    with pytest.raises(Cancelled):
        approaches.kfold(session, config, cancel=cancel)
    assert approaches.run_queue(session, [config], cancel=cancel) == []
    assert load_history(tmp_path / "results").records == []


def test_queue_goes_on_after_a_failed_run(small_demo, tmp_path):
    events = []
    session = Session(events.append, results_dir=tmp_path / "results", models_dir=tmp_path / "models")
    configs = [base_config(small_demo, model="logreg", features="zzz_"), base_config(small_demo, model="logreg")]
    finished = approaches.run_queue(session, configs)
    assert [r.config["features"] for r in finished] == ["both"]
    assert any(isinstance(e, RunFailed) and "zzz_" in e.message for e in events)
    assert [r.status for r in load_history(tmp_path / "results").records] == ["failed", "finished"]


# ---------------------------------------------------------------------------------------------- CLI

def vggtab(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_cli_ablate_then_compare_ensemble_and_importance(small_demo, tmp_path):
    data = ["--embeddings", str(small_demo.embeddings), "--tabular", str(small_demo.tabular)]
    ablate = vggtab("ablate", *data, "--epochs", "2", "--bs", "32", "--lr", "3e-3", cwd=tmp_path)
    assert ablate.returncode == 0, ablate.stderr
    rows = [line for line in ablate.stdout.splitlines() if line.startswith(("embeddings_", "tabular_", "both_"))]
    assert len(rows) == 3 and all("%–" in row for row in rows)
    assert "both_200-100" in ablate.stdout.splitlines()[-1] and "level" in ablate.stdout.splitlines()[-1]

    compare = vggtab("compare", "both_200-100", "embeddings_200-100", cwd=tmp_path)
    assert compare.returncode == 0, compare.stderr
    assert "McNemar" in compare.stdout and "level" in compare.stdout
    ensemble = vggtab("ensemble", "embeddings_200-100", "tabular_200-100", cwd=tmp_path)
    assert ensemble.returncode == 0, ensemble.stderr
    assert "ensemble(embeddings_200-100 + tabular_200-100)" in ensemble.stdout
    listed = vggtab("results", cwd=tmp_path)  # an ensemble has no LR or epochs
    assert listed.returncode == 0, listed.stderr
    assert "ensemble(" in listed.stdout
    importance = vggtab("importance", "both_200-100", cwd=tmp_path)
    assert importance.returncode == 0, importance.stderr
    assert [line.split()[0] for line in importance.stdout.splitlines()[-4:]] == ["emb", "stft", "mel", "cqt"]
    refused = vggtab("compare", "both_200-100", "nope", cwd=tmp_path)
    assert refused.returncode == 2 and "nope" in refused.stderr and "Traceback" not in refused.stderr


def test_cli_kfold_and_a_baseline_run(small_demo, tmp_path):
    data = ["--embeddings", str(small_demo.embeddings), "--tabular", str(small_demo.tabular)]
    kfold = vggtab("kfold", *data, "--model", "logreg", "--n-folds", "3", cwd=tmp_path)
    assert kfold.returncode == 0, kfold.stderr
    assert "±" in kfold.stdout and len([l for l in kfold.stdout.splitlines() if l.startswith("fold ")]) == 3
    run = vggtab("run", *data, "--model", "random_forest", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Valid accuracy" in run.stdout and "LR finder" not in run.stdout
    assert "model not saved" in run.stdout
    listed = vggtab("results", cwd=tmp_path)  # a baseline has no LR
    assert listed.returncode == 0, listed.stderr
    assert "both_random_forest" in listed.stdout
