"""Faults during a run: an exception inside training, cancel mid-epoch, SIGINT / SIGTERM / kill -9 to real
`python -m engine run` processes, runs writing at once, a damaged history. Afterwards the history parses, holds
every finished run, and no half-written file is visible under models/ or results/."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from engine import pipeline
from tui.cli import EXIT_BUG, EXIT_CANCELLED
from engine.config import RunConfig
from engine.errors import Cancelled
from engine.events import BatchEnded, RunCancelled, RunFailed
from engine.pipeline import Session
from engine.store.history import history_path, load_history
from engine.store.models import load_model

PROCESS_TIMEOUT = 300  # a guard against a hung child, not a speed assertion
ENDLESS = "100000"  # epochs: the run is surely still training when it is signalled or killed


@pytest.fixture
def config(tiny_demo):
    return RunConfig(embeddings=str(tiny_demo.embeddings), tabular=str(tiny_demo.tabular), epochs=5, bs=8, lr=1e-3)


def session_in(folder: Path, report=None) -> Session:
    return Session(report or (lambda event: None), models_dir=folder / "models", results_dir=folder / "results")


def saved_files(folder: Path, pattern: str) -> list[Path]:
    return sorted((folder / "models").glob(pattern)) + sorted((folder / "results").glob(pattern))


# --------------------------------------------------------------------------------------- in process

def test_an_exception_inside_training_is_reported_recorded_as_failed_and_re_raised(tmp_path, config):
    events = []

    def broken_display(event):
        events.append(event)
        if isinstance(event, BatchEnded) and event.batch == 2:
            raise RuntimeError("the progress bar broke")

    with pytest.raises(RuntimeError, match="the progress bar broke"):
        session_in(tmp_path, broken_display).train(config)

    failed = events[-1]
    assert isinstance(failed, RunFailed)
    assert failed.message.startswith("Unexpected RuntimeError: ") and "the progress bar broke" in failed.message
    [record] = load_history(tmp_path / "results").records
    assert failed.record == record and record.status == "failed" and record.message == failed.message
    assert saved_files(tmp_path, "*.pkl") == []


def test_the_cli_tells_a_bug_in_one_paragraph_and_keeps_the_traceback_in_a_log(tmp_path, monkeypatch, run_cli,
                                                                                 tiny_demo):
    from engine import model

    def crash(*args, **kwargs):
        raise ZeroDivisionError("division by zero in predict")
    monkeypatch.setattr(model, "predict_proba", crash)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    outcome = run_cli("run", "--embeddings", str(tiny_demo.embeddings), "--tabular", str(tiny_demo.tabular),
                      "--epochs", "1", "--bs", "8", "--lr", "1e-3")

    assert outcome.code == EXIT_BUG
    assert "Traceback" not in outcome.err
    assert outcome.err.startswith("vggtab: unexpected ZeroDivisionError: division by zero in predict\n")
    assert "This is a bug in vggtab" in outcome.err and outcome.err.count("\n") == 2
    [log] = tmp_path.glob("vggtab-error-*.log")
    assert str(log) in outcome.err
    assert "Traceback" in log.read_text() and "def crash" not in outcome.err and "in crash" in log.read_text()
    [record] = load_history(tmp_path / "results").records
    assert record.status == "failed" and "ZeroDivisionError" in record.message


def test_cancel_mid_epoch_stops_at_the_next_batch_and_records_the_run(tmp_path, config):
    cancel, events = threading.Event(), []

    def cancel_at_second_batch(event):
        events.append(event)
        if isinstance(event, BatchEnded) and event.batch == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        session_in(tmp_path, cancel_at_second_batch).train(config, cancel=cancel)

    assert [(e.epoch, e.batch) for e in events if isinstance(e, BatchEnded)] == [(0, 1), (0, 2)]
    cancelled = events[-1]
    assert isinstance(cancelled, RunCancelled) and cancelled.epochs_done == 0
    [record] = load_history(tmp_path / "results").records
    assert record == cancelled.record
    assert record.status == "cancelled" and record.history == () and record.message == "Cancelled after 0 of 5 epochs."
    assert saved_files(tmp_path, "*.pkl") + saved_files(tmp_path, "*.csv") == []


def test_two_runs_of_one_approach_in_the_same_second_keep_both_models_and_csvs(tmp_path, monkeypatch, config):
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2025, 1, 1, 12, 0, 0)
    monkeypatch.setattr(pipeline, "datetime", FrozenClock)
    session = session_in(tmp_path)

    first, second = session.train(config.with_(seed=1, epochs=1)), session.train(config.with_(seed=2, epochs=1))

    assert first.approach == second.approach
    assert len({first.model_path, second.model_path}) == 2 and len({first.results_csv, second.results_csv}) == 2
    for record, seed in ((first, 1), (second, 2)):
        model = load_model(record.model_path, models_dir=tmp_path / "models")
        assert model.vggtab.config["seed"] == seed
        assert pd.read_csv(record.results_csv)["run_id"].tolist() == [record.run_id]
    assert len(saved_files(tmp_path, "*history_*.csv")) == 2


def test_a_damaged_history_lists_its_good_rows_warns_and_is_never_rewritten(tmp_path, run_cli, config):
    session = session_in(tmp_path)
    first = session.train(config.with_(epochs=1))
    path = history_path(tmp_path / "results")
    whole = path.read_bytes()
    from_an_old_version = {"run_id": "20240101_000000_abcdef", "created": "2024-01-01T00:00:00",
                           "approach": "notebook", "config": {}}  # no status yet
    with open(path, "ab") as handle:
        handle.write(json.dumps(from_an_old_version).encode() + b"\n" + whole[: len(whole) // 2])  # torn by a kill
    damaged = path.read_bytes()

    outcome = run_cli("results", "--results-dir", str(tmp_path / "results"))

    assert outcome.code == 0
    assert first.approach in outcome.out and "notebook" not in outcome.out
    warnings = outcome.err.splitlines()
    assert len(warnings) == 2
    assert "line 2: skipped, it has no 'status' (a row from another version?)" in warnings[0]
    assert "line 3: skipped, it is not complete JSON (a write cut short?)" in warnings[1]
    assert path.read_bytes() == damaged

    second = session.train(config.with_(epochs=1))
    assert path.read_bytes().startswith(damaged)
    assert [r.run_id for r in load_history(tmp_path / "results").records] == [first.run_id, second.run_id]


# ------------------------------------------------------------------------------------- real processes

def start_run(folder: Path, demo, *args: str) -> subprocess.Popen:
    folder.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "tui", "run", "--embeddings", str(demo.embeddings), "--tabular",
         str(demo.tabular), "--bs", "8", "--lr", "1e-3", *args],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_training(process: subprocess.Popen) -> None:
    """Read the run's output up to its first epoch row: from then on it is mid-training."""
    printed = []
    for line in process.stdout:
        printed.append(line)
        if len(printed) > 1 and printed[-2].split()[:2] == ["epoch", "train_loss"]:
            return
    raise AssertionError(f"The run ended before training:\n{''.join(printed)}{process.stderr.read()}")


def test_sigint_sigterm_and_kill_9_mid_training_keep_the_history_whole(tmp_path, tiny_demo, config):
    """Three runs share one project folder, as an app and CLI runs over SSH would; a run finished before them
    must survive. SIGINT / SIGTERM cancel at the next batch and are recorded (the two processes append at
    once); kill -9 leaves no trace, as the history only takes a run when it ends."""
    finished = session_in(tmp_path).train(config.with_(epochs=1))
    runs = {signum: start_run(tmp_path, tiny_demo, "--epochs", ENDLESS, "--name", signum.name)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL)}
    for signum, process in runs.items():
        wait_until_training(process)
    for signum, process in runs.items():
        process.send_signal(signum)
    outputs = {signum: process.communicate(timeout=PROCESS_TIMEOUT) for signum, process in runs.items()}

    assert runs[signal.SIGKILL].returncode == -signal.SIGKILL
    cancelled = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        out, err = outputs[signum]
        assert runs[signum].returncode == EXIT_CANCELLED, err
        assert "Traceback" not in out + err
        said = re.search(r"Run cancelled after (\d+) epochs \(recorded in the history\)\.", out)
        assert said, out[-500:]
        cancelled[signum.name] = int(said.group(1))

    history = load_history(tmp_path / "results")
    assert history.warnings == []
    assert history.records[0] == finished
    later = {r.approach: r for r in history.records[1:]}
    assert set(later) == {"SIGINT", "SIGTERM", "SIGHUP"}  # the killed run is omitted
    for name, epochs_done in cancelled.items():
        assert later[name].status == "cancelled" and len(later[name].history) == epochs_done >= 1
        assert later[name].message == f"Cancelled after {epochs_done} of {ENDLESS} epochs."
    # Only the finished run's files, whole: nothing half-written, no temp file a *.pkl / *.csv glob could see.
    finished_csvs = [tmp_path / finished.results_csv]
    finished_csvs.append(finished_csvs[0].with_name(finished_csvs[0].name.replace("_results_", "_history_")))
    assert saved_files(tmp_path, "*.pkl") == [tmp_path / finished.model_path]
    assert saved_files(tmp_path, "*.csv") == sorted(finished_csvs)
    assert list(tmp_path.glob("models/.*")) + list(tmp_path.glob("results/.*")) == []
    assert load_model(tmp_path / finished.model_path, models_dir=tmp_path / "models").vggtab.classes
