"""Pre-flight: what would fail only after training is refused before the first epoch, with nothing left behind
and the history as it was."""

import re

import pytest

from engine.preflight import NAME_OVERHEAD, mlp_parameters
from engine.store.history import load_history


@pytest.fixture
def project(tmp_path, tiny_demo, run_cli):
    data = ["--embeddings", str(tiny_demo.embeddings), "--tabular", str(tiny_demo.tabular),
            "--results-dir", str(tmp_path / "results"), "--models-dir", str(tmp_path / "models"), "--bs", "8",
            "--lr", "1e-3"]
    first = run_cli("run", *data, "--epochs", "1")
    assert first.code == 0, first.err
    return tmp_path, data


def kept_files(folder):
    return {p: p.read_bytes() for kept in ("models", "results") for p in (folder / kept).rglob("*") if p.is_file()}


def refused_before_training(outcome) -> None:
    assert outcome.code == 2, outcome.err
    assert "epoch" not in outcome.out.split("Run failed")[0].split("train / ")[-1]  # no epoch table was printed
    assert "bug" not in outcome.err and "Traceback" not in outcome.err


def test_a_name_too_long_for_a_file_name_is_refused_before_training(project, run_cli):
    folder, data = project
    outcome = run_cli("run", *data, "--epochs", "50", "--name", "x" * 260)

    refused_before_training(outcome)
    assert "approach name is 260 bytes long" in outcome.err and "--name=" in outcome.err
    assert f"at most {255 - NAME_OVERHEAD} characters" in outcome.err
    assert [r.status for r in load_history(folder / "results").records] == ["finished", "failed"]


@pytest.mark.parametrize("name", ["history.jsonl", "history.lock"])
def test_a_history_or_lock_that_is_a_folder_is_refused_before_training_and_nothing_is_written(project, run_cli, name):
    folder, data = project
    blocked = folder / "results" / name
    if blocked.exists():
        blocked.rename(folder / f"saved-{name}")
    blocked.mkdir()
    before = kept_files(folder)

    outcome = run_cli("run", *data, "--epochs", "50")

    refused_before_training(outcome)
    assert f"{blocked} is not a file" in outcome.err and "--results-dir" in outcome.err
    assert kept_files(folder) == before  # no model, no CSVs of a run that could not be recorded


def test_layers_too_big_for_memory_are_refused_with_the_size_they_need(project, run_cli):
    folder, data = project
    outcome = run_cli("run", *data, "--layers", "1000000,1000000")

    refused_before_training(outcome)
    inputs = int(re.search(r"→ ([\d,]+) inputs", outcome.out)[1].replace(",", ""))
    classes = int(re.search(r"(\d+) classes", outcome.out)[1])
    assert f"make {mlp_parameters(inputs, (1_000_000, 1_000_000), classes):,} parameters" in outcome.err
    assert "GiB available" in outcome.err and "--layers=" in outcome.err


def test_the_parameter_count_matches_the_notebook(project):
    # The notebook's [200, 100] model on 2,601 inputs and 76 classes had 553,678 parameters.
    assert mlp_parameters(2601, (200, 100), 76) == 553_678
