"""Shared fixtures: small generated demo sets, and a private load cache for every test."""

import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.demo import DemoFiles, generate_demo

SMALL_BINS = {"stft": 12, "mel": 8, "cqt": 6}
# Big enough for a model to learn well above random; still has the NaN row, multi-label rows, unmatched keys.
SMALL_DEMO = dict(n_tabular=700, n_embeddings=520, n_classes=8, n_test=50, bins=SMALL_BINS)
# For property-style tests that only need the shape of the data.
TINY_DEMO = dict(n_tabular=80, n_embeddings=60, n_classes=6, n_test=10, bins={"stft": 4, "mel": 3, "cqt": 2})


def edit_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """A user's in-place edit with the file's mtime put back: `sed -i s/old/new/` then `touch -r` from a copy."""
    assert len(old) == len(new)
    reference = path.with_name(path.name + ".mtime-reference")
    shutil.copy2(path, reference)
    subprocess.run(["sed", "-i", f"s/{old}/{new}/", str(path)], check=True)
    subprocess.run(["touch", "-r", str(reference), str(path)], check=True)
    reference.unlink()


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> DemoFiles:
    return generate_demo(tmp_path_factory.mktemp("small_demo"), **SMALL_DEMO)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> DemoFiles:
    return generate_demo(tmp_path_factory.mktemp("tiny_demo"), **TINY_DEMO)


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path, monkeypatch):
    """Point the engine's load cache at this test's own folder, so tests never share or keep a cache."""
    monkeypatch.setenv("VGGTAB_CACHE_DIR", str(tmp_path / "cache"))


@dataclass(frozen=True)
class CliOutcome:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """`vggtab ARGS` through the CLI's main in this process (no seconds of imports per call, and monkeypatches
    apply); returns what the user would see. The signal handlers `run` installs are put back afterwards."""
    from tui import cli
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def run(*args: str) -> CliOutcome:
        capsys.readouterr()
        try:
            code = cli.main(list(args))
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        captured = capsys.readouterr()
        return CliOutcome(code, captured.out, captured.err)

    return run


@pytest.fixture
def session(tmp_path):
    """A real Session writing under tmp_path that keeps every event it reports in `session.events`."""
    from engine.pipeline import Session
    events = []
    session = Session(events.append, models_dir=tmp_path / "models", results_dir=tmp_path / "results")
    session.events = events
    return session
