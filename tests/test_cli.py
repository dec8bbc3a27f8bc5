"""The headless CLI as a user runs it: a real process, its output and exit code."""

import subprocess
import sys

import pytest


def vggtab(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tui", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture
def data_args(small_demo):
    return ["--embeddings", str(small_demo.embeddings), "--tabular", str(small_demo.tabular)]


def test_run_prints_summary_lr_epochs_evaluation_and_saved_files(tmp_path, data_args):
    result = vggtab("run", *data_args, "--epochs", "3", "--bs", "32", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "matched" in out and "dropped" in out
    assert "LR finder" in out and "valley" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["epoch", "train_loss"])
    assert [line.split()[0] for line in lines[header + 1:header + 4]] == ["1", "2", "3"]
    assert "Valid accuracy" in out and "Saved model" in out
    assert list((tmp_path / "models").glob("*.pkl")) and (tmp_path / "results" / "history.jsonl").exists()


@pytest.mark.parametrize("args, expected", [
    (["--embeddings", "missing.csv"], "missing.csv"),
    (["--layers", "200,,100"], "200,,100"),
    (["--lr", "fast"], "'fast'"),
    (["--epochs", "0"], "epochs=0"),
    (["--features", "zzz_"], "zzz_"),
])
def test_bad_input_exits_2_with_a_message_and_no_traceback(tmp_path, data_args, args, expected):
    result = vggtab("run", *data_args, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_help_documents_the_commands(tmp_path):
    result = vggtab("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "demo", "results"):
        assert command in result.stdout


def test_the_run_summary_shows_what_the_features_step_adjusted(tiny_demo, tmp_path, run_cli):
    outcome = run_cli("run", "--embeddings", str(tiny_demo.embeddings), "--tabular", str(tiny_demo.tabular),
                      "--results-dir", str(tmp_path / "results"), "--models-dir", str(tmp_path / "models"),
                      "--epochs", "1", "--bs", "8", "--lr", "1e-3", "--pca", "500")
    assert outcome.code == 0, outcome.err
    assert "  note: pca=500 is more than the data allows; using" in outcome.out
