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


def test_demo_force_replaces_its_own_files_but_never_a_users(tmp_path, run_cli):
    own = tmp_path / "demo"
    assert run_cli("demo", "--out", str(own), "--clips", "400").code == 0
    first = (own / "tabular.csv").read_bytes()
    assert run_cli("demo", "--out", str(own), "--clips", "400", "--seed", "1", "--force").code == 0
    assert (own / "tabular.csv").read_bytes() != first  # its own earlier files: replaced

    users = tmp_path / "mine"
    users.mkdir()
    (users / "embeddings.csv").write_text("fname,labels,emb_0\nreal.wav,Bark,3\n")
    outcome = run_cli("demo", "--out", str(users), "--clips", "400", "--force")
    assert outcome.code == 2
    assert f"{users / 'embeddings.csv'} already exists and was not written by the demo generator" in outcome.err
    assert "--out" in outcome.err and "Traceback" not in outcome.err
    assert (users / "embeddings.csv").read_text() == "fname,labels,emb_0\nreal.wav,Bark,3\n"
    assert not (users / "tabular.csv").exists()
