"""The sweep on small generated data: the test split stays unseen, the optimism gap comes from the right clips,
pruning stops a diverging trial, and worker processes share one study without losing or repeating a trial."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import split
from engine.config import RunConfig, SweepConfig
from engine.errors import ConfigError
from engine.events import TrialEnded, TrialStarted
from engine.pipeline import Session
from engine.store.history import load_history
from engine.store.predictions import load_predictions
from engine.sweep import Worker, open_study, redacted, run_sweep, run_workers, sweep_base

# Two epochs, fast models: every sweep here takes seconds.
QUICK = dict(epoch_choices=(2,), model_choices=("mlp", "logreg"), prune_startup=1)


def base_config(files, **changes) -> RunConfig:
    return sweep_base(RunConfig(embeddings=str(files.embeddings), tabular=str(files.tabular), **changes))


def held_out_keys(config: RunConfig, tmp_path) -> tuple[set, set]:
    """(test clips, every other clip) of the config's data, from the split itself."""
    session = Session(results_dir=tmp_path / "probe", models_dir=tmp_path / "probe_models")
    prepared = session.prepare(config)
    used = set(prepared.keys[prepared.train_idx]) | set(prepared.keys[prepared.valid_idx])
    return set(prepared.keys) - used, used


def run_trials(base: RunConfig, sweep: SweepConfig, folder, study="s", enqueue=()):
    study_object = open_study(sweep, base, folder / "results", study)
    for params in enqueue:
        study_object.enqueue_trial(params)
    worker = Worker(study_object, sweep, base, models_dir=folder / "models", results_dir=folder / "results")
    worker.run(sweep.trials)
    return study_object, load_history(folder / "results").records


def test_the_test_split_is_set_aside_stratified_and_seeded(small_demo, tmp_path):
    config = base_config(small_demo)
    test, rest = held_out_keys(config, tmp_path)
    again, _ = held_out_keys(config.with_(valid_pct=0.3, fold=1), tmp_path)
    assert test == again  # the valid split or fold does not move the test clips
    assert 0.18 < len(test) / (len(test) + len(rest)) < 0.22
    final = Session(results_dir=tmp_path / "r", models_dir=tmp_path / "m").prepare(config.with_(score_on="test"))
    assert set(final.keys[final.valid_idx]) == test and set(final.keys[final.train_idx]) == rest


def test_changing_only_test_rows_changes_no_trials_valid_score(small_demo, tmp_path):
    base = base_config(small_demo)
    test, _ = held_out_keys(base, tmp_path)
    frame = pd.read_csv(small_demo.embeddings)
    emb = [c for c in frame.columns if c.startswith("emb_")]
    finite_test_rows = frame["fname"].isin(test) & np.isfinite(frame[emb]).all(axis=1)
    assert finite_test_rows.sum() > 20
    frame.loc[finite_test_rows, emb] = np.random.default_rng(0).normal(100, 50, (finite_test_rows.sum(), len(emb)))
    changed = tmp_path / "changed_embeddings.csv"
    frame.to_csv(changed, index=False)

    sweep = SweepConfig(trials=3, **QUICK)
    scores = []
    for name, embeddings in (("original", small_demo.embeddings), ("changed", changed)):
        config = base.with_(embeddings=str(embeddings))
        study, _ = run_trials(config, sweep, tmp_path / name)
        records = {r.run_id: r for r in load_history(tmp_path / name / "results").records}
        scores.append([(t.params, t.value, [h["valid_loss"] for h in records[t.user_attrs["run_ids"][0]].history])
                       for t in study.trials])
    assert scores[0] == scores[1]
    # ... and the change itself is real: scored on the test clips, the same config differs.
    on_test = [Session(results_dir=tmp_path / f"t{i}", models_dir=tmp_path / f"tm{i}").train(
        base.with_(embeddings=str(e), score_on="test", model="logreg")).metrics["val_accuracy"]
        for i, e in enumerate((small_demo.embeddings, changed))]
    assert on_test[0] != on_test[1]


def test_the_report_scores_the_winner_on_test_clips_only(small_demo, tmp_path):
    base = base_config(small_demo)
    test, rest = held_out_keys(base, tmp_path)
    report = run_sweep(base, SweepConfig(trials=3, top_n=2, **QUICK), results_dir=tmp_path / "results",
                       models_dir=tmp_path / "models")
    records = {r.run_id: r for r in load_history(tmp_path / "results").records}
    trial_runs = [run_id for row in report.trials if row.state == "complete" for run_id in row.run_ids]
    for run_id in trial_runs:  # every finished trial was scored on clips outside the test split
        saved = load_predictions(tmp_path / "results", run_id)
        assert not set(saved.keys) & test
    for score in (report.best_test, report.default_test, report.ensemble_test):
        saved = load_predictions(tmp_path / "results", score.run_id)
        assert set(saved.keys) == test and score.n == len(test)
        correct = saved.probs.argmax(axis=1) == saved.targets
        assert score.accuracy == pytest.approx(correct.mean())
    best_row = next(row for row in report.trials if row.number == report.best_trial)
    assert best_row.accuracy == max(row.accuracy for row in report.trials if row.state == "complete")
    assert report.best_valid.accuracy == pytest.approx(records[best_row.run_ids[0]].metrics["val_accuracy"])
    assert report.optimism_gap == pytest.approx(report.best_valid_mean - report.best_test.accuracy)
    assert report.best_valid.low <= report.best_valid.accuracy <= report.best_valid.high
    assert records[report.default_test.run_id].config["layers"] == [200, 100]
    assert "p" in report.winner_vs_default and 0 <= report.winner_vs_default_p <= 1
    assert {r.config["sweep"] for r in records.values()} == {report.study}
    assert (tmp_path / "results" / "sweeps" / f"{report.study}.json").is_file()


def test_a_trial_announces_its_fit_with_the_settings_it_changed_from_the_base(small_demo, tmp_path):
    base = base_config(small_demo, lr=3e-3)
    study = open_study(SweepConfig(trials=2, **QUICK), base, tmp_path / "results", "changes")
    for params in ({"model": "logreg", "features": "embeddings"},
                   {"model": "mlp", "features": "both", "reduce": "none", "layers": "2 layers", "ps": 0.5,
                    "wd": 0.01, "bs": 64, "epochs": 2, "lr_source": "finder"}):
        study.enqueue_trial(params)
    events = []
    Worker(study, SweepConfig(trials=2, **QUICK), base, models_dir=tmp_path / "models",
           results_dir=tmp_path / "results", report=events.append).run(2)
    started = [e for e in events if isinstance(e, TrialStarted)]
    ended = [e for e in events if isinstance(e, TrialEnded)]
    assert [e.changes for e in started] == [{"features": "embeddings", "model": "logreg"},
                                            {"ps": 0.5, "epochs": 2, "lr": None}]  # the finder's LR, not 3e-3
    assert [e.changes for e in ended] == [e.changes for e in started]
    assert events.index(started[1]) > events.index(ended[0])  # one trial at a time: started, its runs, ended


def test_pruning_stops_a_trial_whose_loss_diverges(small_demo, tmp_path):
    base = base_config(small_demo)
    sane = dict(model="mlp", features="embeddings", layers="2 layers", ps=0.0, wd=0.01, bs=64, epochs=4,
                lr_source="range", lr=1e-3)
    # LR 2 is outside the search range (Optuna takes an enqueued value anyway): the loss is in the thousands.
    sweep = SweepConfig(trials=2, **(QUICK | {"epoch_choices": (4,)}))
    study, history = run_trials(base, sweep, tmp_path, enqueue=(sane, sane | {"lr": 2.0}))
    first, diverging = study.trials
    assert first.state.name == "COMPLETE" and diverging.state.name == "PRUNED"
    stopped = next(r for r in history if r.run_id == diverging.user_attrs["run_ids"][0])
    assert stopped.status == "cancelled" and len(stopped.history) == 2  # stopped after epoch 2 of 4
    assert stopped.message.startswith("Pruned by sweep s") and "after 2 of 4 epochs" in stopped.message


def test_a_study_refuses_workers_with_other_settings(small_demo, tmp_path):
    base = base_config(small_demo)
    open_study(SweepConfig(), base, tmp_path, "shared")
    with pytest.raises(ConfigError, match="other settings .*base"):
        open_study(SweepConfig(), base.with_(test_pct=0.3), tmp_path, "shared")


def assert_no_trial_lost_or_repeated(study, history, n_fits: int) -> None:
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    fitted = [t for t in trials if "same_as" not in t.user_attrs]  # the others reused an earlier trial's score
    trial_runs = [run_id for t in fitted for run_id in t.user_attrs["run_ids"]]
    assert len(trial_runs) == len(set(trial_runs)) == len(fitted) == n_fits
    assert all(t.user_attrs["run_ids"] == [] and t.value == trials[t.user_attrs["same_as"]].value
               for t in trials if t not in fitted)
    in_history = Counter(r.run_id for r in history if r.config.get("score_on") == "valid")
    assert set(in_history) == set(trial_runs) and set(in_history.values()) == {1}


def test_two_worker_processes_share_the_journal_study(small_demo, tmp_path):
    base = base_config(small_demo)
    sweep = SweepConfig(trials=4, workers=2, study="two", epoch_choices=(2,), model_choices=("logreg",))
    report = run_sweep(base, sweep, results_dir=tmp_path / "results", models_dir=tmp_path / "models")
    study = open_study(sweep, base, tmp_path / "results", "two")
    assert_no_trial_lost_or_repeated(study, load_history(tmp_path / "results").records, 4)
    assert len([row for row in report.trials if row.run_ids]) == 4
    # the report tells fitted trials from those that reused an earlier trial's score
    assert [row.same_as for row in report.trials] == [t.user_attrs.get("same_as") for t in study.trials]
    assert len([row for row in report.trials if row.same_as is None]) == 4


def test_split_rows_of_a_nested_split_never_overlap():
    labels = np.repeat(np.array(list("abcdef")), 20)
    for fold in (None, 0, 2):
        held = split.nested_split(labels, test_pct=0.25, score_on="valid", fold=fold, n_folds=3, seed=1)
        final = split.nested_split(labels, test_pct=0.25, score_on="test", seed=1)
        test = set(final.valid_idx)
        assert not test & set(held.train_idx) and not test & set(held.valid_idx)
        assert set(held.train_idx) | set(held.valid_idx) == set(final.train_idx)


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def install_postgres() -> str:
    """Debian's postgresql package, when this test runs as root and it is missing; '' or why it failed."""
    if postgres_bin() is not None:
        return ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "PostgreSQL is not installed and this test is not root on a Debian system to install it"
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                              env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return "" if postgres_bin() is not None else "the postgresql package installed no initdb"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A private PostgreSQL server in a temp folder on a free port, stopped and removed afterwards."""
    why_not = install_postgres()
    if why_not:
        pytest.skip(f"No PostgreSQL server for the shared-study test: {why_not}.")
    folder = Path(tempfile.mkdtemp(prefix="vggtab-pg-"))
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    bin_dir, port, data = postgres_bin(), free_port(), folder / "data"
    subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
                              "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_two_worker_processes_share_a_postgresql_study(small_demo, tmp_path, postgres_url):
    base = base_config(small_demo)
    sweep = SweepConfig(trials=4, workers=2, study="pg", storage=postgres_url, epoch_choices=(2,),
                        model_choices=("logreg",))
    study = open_study(sweep, base, tmp_path / "results", "pg")
    events = []
    run_workers(sweep, base, "pg", results_dir=tmp_path / "results", models_dir=tmp_path / "models",
                report=events.append, cancel=threading.Event())
    assert_no_trial_lost_or_repeated(study, load_history(tmp_path / "results").records, 4)
    ended = [e for e in events if isinstance(e, TrialEnded)]
    assert sorted(e.number for e in ended) == list(range(len(study.trials))) and {e.worker for e in ended} == {0, 1}
    # Each fit was announced from its worker process before it ended; a repeat of tried settings fits nothing.
    started = [e for e in events if isinstance(e, TrialStarted)]
    assert sorted(e.number for e in started) == sorted(e.number for e in ended if e.same_as is None)
    assert all(e.changes["model"] == "logreg" and "sweep" not in e.changes for e in started)
    assert not (tmp_path / "results" / "sweeps" / "pg.journal").exists()


def test_storage_urls_are_shown_without_their_password():
    assert redacted("postgresql://me:secret@db.example:5432/sweeps") == "postgresql://me:***@db.example:5432/sweeps"
    assert redacted("postgresql://me@db/sweeps") == "postgresql://me@db/sweeps"
    assert redacted("sqlite:///results/s.db") == "sqlite:///results/s.db"


def test_sweep_settings_are_checked_by_their_schema():
    assert SweepConfig(model_choices=["mlp"], epoch_choices=[3]).model_choices == ("mlp",)
    for bad in (dict(trials=0), dict(model_choices=("random_forest",)), dict(epoch_choices=(0,)),
                dict(study="a/b"), dict(cv=1), dict(pruner="hyperband")):
        with pytest.raises(ConfigError, match=f"Setting {next(iter(bad))}="):
            SweepConfig(**bad)


def test_the_sweep_command_prints_the_honest_report_and_json(small_demo, tmp_path, run_cli):
    data = ["--embeddings", str(small_demo.embeddings), "--tabular", str(small_demo.tabular),
            "--results-dir", str(tmp_path / "results"), "--models-dir", str(tmp_path / "models")]
    shown = run_cli("sweep", *data, "--trials", "2", "--model-choices", "logreg", "--study", "cli", "--top-n", "2")
    assert shown.code == 0, shown.err
    assert "trial   0 complete" in shown.out and "trial   1 " in shown.out
    assert re.search(r"Sweep cli: 2 trials fitted \(", shown.out)
    for line in ("valid ", "test ", "optimism gap", "top-2 ensemble", "default config on test",
                 "winner vs default on the test clips"):
        assert line in shown.out
    as_json = run_cli("sweep", *data, "--trials", "1", "--model-choices", "logreg", "--study", "cli", "--json")
    assert as_json.code == 0, as_json.err
    summary = json.loads(as_json.out)
    fitted = [row for row in summary["trials"] if row["run_ids"]]
    assert len(fitted) == 3  # the study's two earlier fits and this command's one
    assert summary["optimism_gap"] == pytest.approx(summary["best_valid_mean"] - summary["best_test"]["accuracy"])
    assert f"trial {fitted[-1]['number']:>3} complete" in as_json.err
    refused = run_cli("sweep", *data, "--trials", "1", "--study", "cli", "--test-pct", "0.3")
    assert refused.code == 2 and "other settings" in refused.err


def test_run_try_advice_prints_a_verdict_for_each_suggestion(small_demo, tmp_path, run_cli):
    shown = run_cli("run", "--embeddings", str(small_demo.embeddings), "--tabular", str(small_demo.tabular),
                    "--results-dir", str(tmp_path / "results"), "--models-dir", str(tmp_path / "models"),
                    "--features", "tabular", "--layers", "400,200,100", "--epochs", "10", "--try-advice")
    assert shown.code == 0, shown.err
    advice = [line.strip() for line in shown.out[shown.out.index("Advice checked"):].splitlines()[1:]]
    changes = ("ps 0.5 ", "wd 0.1 ", "5 epochs ", "top ")
    assert [line.startswith(change) for line, change in zip(advice, changes)] == [True] * 4
    assert all(any(verdict in line for verdict in (" helped:", " did not help here:", " made no clear difference:"))
               and "McNemar mid-p" in line for line in advice[:4])
    assert advice[4].startswith("saved in") and advice[4].endswith(".json")


def test_a_trial_with_an_earlier_trials_settings_reuses_its_score(small_demo, tmp_path):
    base = base_config(small_demo)
    same = dict(model="logreg", features="embeddings")
    study, history = run_trials(base, SweepConfig(trials=2, **QUICK), tmp_path, enqueue=(same, same))
    first, again = study.trials[:2]  # the repeat does not count: a third trial fitted something new
    assert again.value == first.value and again.user_attrs["same_as"] == 0 and again.user_attrs["run_ids"] == []
    assert len(study.trials) == 3 and "same_as" not in study.trials[2].user_attrs
    assert [r.run_id for r in history if r.config.get("sweep") == "s"] == (
        first.user_attrs["run_ids"] + study.trials[2].user_attrs["run_ids"])  # two fits for three trials
