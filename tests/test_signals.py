"""Signals as a remote user sends them (Ctrl-C, SIGTERM, SIGHUP when the SSH session drops) and a closed stdout,
at each stage of a headless run: the run stops, is recorded as cancelled (or finished, once its fit is done),
nothing earlier changes and no traceback is printed.

In process, the signal is sent by the printer the moment a stage reports, so each stage is hit exactly; real
processes cover what only a process shows (exit codes, a pipe closed by its reader)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store.history import load_history
from tui import cli, console
from tui.cli import EXIT_CANCELLED

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
BEFORE_FIT = ("load", "merge", "audit", "labels", "split", "features", "lr_find")


@pytest.fixture
def project(tmp_path, tiny_demo, run_cli, monkeypatch):
    """A project folder with one finished run in its history, and a `vggtab run` on it. The first run caches its
    data elsewhere, so that the run under test goes through every stage."""
    data = ["--embeddings", str(tiny_demo.embeddings), "--tabular", str(tiny_demo.tabular),
            "--results-dir", str(tmp_path / "results"), "--models-dir", str(tmp_path / "models"), "--bs", "8"]
    cache = os.environ["VGGTAB_CACHE_DIR"]
    monkeypatch.setenv("VGGTAB_CACHE_DIR", str(tmp_path / "first-run-cache"))
    first = run_cli("run", *data, "--epochs", "1", "--lr", "1e-3")
    assert first.code == 0, first.err
    monkeypatch.setenv("VGGTAB_CACHE_DIR", cache)
    return tmp_path, data


def snapshot(folder: Path) -> dict[Path, bytes]:
    """Every file the runs keep: models and results."""
    return {path: path.read_bytes() for kept in ("models", "results") for path in sorted((folder / kept).rglob("*"))
            if path.is_file()}


def signal_at(monkeypatch, signums, *, stage: str | None = None, epoch: int | None = None) -> None:
    """Send `signums` to this process when the run reports `stage` done, or the end of epoch `epoch`."""
    def send():
        for signum in signums:
            os.kill(os.getpid(), signum)

    stage_done, epoch_ended = console.ConsolePrinter.on_StageDone, console.ConsolePrinter.on_EpochEnded

    def on_stage(printer, event):
        stage_done(printer, event)
        if event.stage == stage:
            send()

    def on_epoch(printer, event):
        epoch_ended(printer, event)
        if event.epoch == epoch:
            send()
    monkeypatch.setattr(console.ConsolePrinter, "on_StageDone", on_stage)
    monkeypatch.setattr(console.ConsolePrinter, "on_EpochEnded", on_epoch)


@pytest.mark.parametrize("stage", BEFORE_FIT)
def test_a_signal_before_the_fit_stops_the_run_at_once_and_records_it_cancelled(project, run_cli, monkeypatch,
                                                                                 stage):
    folder, data = project
    before = snapshot(folder)
    signum = SIGNALS[BEFORE_FIT.index(stage) % len(SIGNALS)]
    signal_at(monkeypatch, [signum], stage=stage)

    outcome = run_cli("run", *data, "--epochs", "3", "--lr", "auto", "--name", "stopped")

    assert outcome.code == EXIT_CANCELLED, outcome.err
    assert "Traceback" not in outcome.out + outcome.err and "bug" not in outcome.err
    assert "Run cancelled after 0 epochs (recorded in the history)." in outcome.out
    history = load_history(folder / "results")
    assert [r.status for r in history.records] == ["finished", "cancelled"]
    assert history.records[-1].approach == "stopped" and history.records[-1].message == "Cancelled after 0 of 3 epochs."
    after = snapshot(folder)
    for path, content in before.items():  # earlier files byte-identical, except the history that grew by a line
        assert after[path] == content or after[path].startswith(content) and path.name == "history.jsonl"
    assert set(after) - set(before) == set()  # no model, CSV or temp file of the stopped run


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: s.name)
def test_a_signal_mid_fit_stops_at_the_next_batch_keeping_the_epochs_done(project, run_cli, monkeypatch, signum):
    folder, data = project
    signal_at(monkeypatch, [signum], epoch=2)

    outcome = run_cli("run", *data, "--epochs", "50", "--lr", "1e-3")

    assert outcome.code == EXIT_CANCELLED and "Traceback" not in outcome.err
    cancelled = load_history(folder / "results").records[-1]
    assert cancelled.status == "cancelled" and len(cancelled.history) in (2, 3)  # the epoch in flight may end
    assert cancelled.message == f"Cancelled after {len(cancelled.history)} of 50 epochs."


@pytest.mark.parametrize("stage", ["fit", "evaluate", "save"])
def test_signals_once_the_fit_is_done_wait_for_the_run_to_be_saved_and_recorded(project, run_cli, monkeypatch,
                                                                                 stage):
    """Two Ctrl-C and a SIGHUP while the model and results are written: the run still ends whole, as finished."""
    folder, data = project
    signal_at(monkeypatch, [signal.SIGINT, signal.SIGINT, signal.SIGHUP], stage=stage)

    outcome = run_cli("run", *data, "--epochs", "2", "--lr", "1e-3", "--name", "saved")

    assert outcome.code == 0, outcome.err
    record = load_history(folder / "results").records[-1]
    assert record.approach == "saved" and record.status == "finished"
    assert (folder / record.model_path).is_file() or Path(record.model_path).is_file()
    assert Path(record.results_csv).is_file()


def test_a_closed_stdout_stops_the_run_and_records_it_without_a_traceback(tmp_path, tiny_demo):
    """`vggtab run | head -3`: the reader goes away after three lines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "run", "--embeddings", str(tiny_demo.embeddings), "--tabular",
         str(tiny_demo.tabular), "--bs", "8", "--lr", "1e-3", "--epochs", "100000", "--name", "piped"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(3):
        process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=300) == EXIT_CANCELLED, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "bug" not in err
    [record] = load_history(tmp_path / "results").records
    assert record.approach == "piped" and record.status == "cancelled"


def test_a_detached_run_goes_on_without_its_terminal_and_logs_to_the_results_folder(tmp_path, tiny_demo, run_cli):
    outcome = run_cli("run", "--detach", "--embeddings", str(tiny_demo.embeddings), "--tabular",
                      str(tiny_demo.tabular), "--results-dir", str(tmp_path / "results"), "--models-dir",
                      str(tmp_path / "models"), "--bs", "8", "--lr", "1e-3", "--epochs", "2", "--name", "detached")

    assert outcome.code == 0, outcome.err
    pid = int(outcome.out.split("process ")[1].split(";")[0])
    assert os.getsid(pid) == pid  # a session of its own: the terminal's SIGHUP never reaches it
    assert os.waitpid(pid, 0)[1] == 0
    [log] = (tmp_path / "results").glob("run_*.log")
    assert "Valid accuracy" in log.read_text() and str(log) in outcome.out
    [record] = load_history(tmp_path / "results").records
    assert record.approach == "detached" and record.status == "finished"
