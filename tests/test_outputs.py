"""Output paths a user names (predict --out, results --export) never cost what the user keeps.

Every refused case goes through the real CLI: exit 2, a message naming the path and what it is, and every file
in the folder byte-identical afterwards. An earlier output of the same kind is replaced only with --force.
"""

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from engine.config import RunConfig
from engine.pipeline import Session
from engine.store.history import HISTORY_FILE

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def work(tiny_demo, tmp_path_factory):
    """A folder as a user has it: data/, results/ and models/ of a logreg and a one-epoch MLP run, an earlier
    submission, an exported table and a note of the user's own."""
    folder = tmp_path_factory.mktemp("outputs")
    shutil.copytree(tiny_demo.embeddings.parent, folder / "data")
    session = Session(models_dir=folder / "models", results_dir=folder / "results", cache_dir=folder / "cache")
    config = RunConfig(embeddings=str(folder / "data" / "embeddings.csv"), tabular=str(folder / "data" / "tabular.csv"),
                       epochs=1, bs=16, lr=1e-3)
    logreg = session.train(config.with_(model="logreg"))
    mlp = session.train(config)
    (folder / "submission.csv").write_text("fname,Meow,Purr\na.wav,0.25,0.75\n")
    shutil.copy(FIXTURES / "table_v0.1.0.csv", folder / "table.csv")
    (folder / "notes.txt").write_text("my own notes\n")
    results_csv = Path(logreg.results_csv)
    return {
        "folder": folder, "model": Path(logreg.model_path), "other model": Path(mlp.model_path),
        "history": folder / "results" / HISTORY_FILE, "results csv": results_csv,
        "epochs csv": results_csv.with_name(results_csv.name.replace("_results_", "_history_")),
        "predictions": folder / "results" / "predictions" / f"{logreg.run_id}.npz",
        "test embeddings": folder / "data" / "test_embeddings.csv", "test tabular": folder / "data" / "test_tabular.csv",
        "training embeddings": folder / "data" / "embeddings.csv", "submission": folder / "submission.csv",
        "table": folder / "table.csv", "notes": folder / "notes.txt", "a folder": folder / "data",
    }


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "cache" not in p.parts}


def predict(run_cli, work, out, *extra):
    return run_cli("predict", "--model", str(work["model"]), "--models-dir", str(work["folder"] / "models"),
                   "--embeddings", str(work["test embeddings"]), "--tabular", str(work["test tabular"]),
                   "--out", str(out), *extra)


def export(run_cli, work, out, *extra):
    return run_cli("results", "--results-dir", str(work["folder"] / "results"), "--export", str(out), *extra)


COMMANDS = {"predict": (predict, "--out"), "export": (export, "--export")}
REFUSED = [  # (command, target in `work`, extra options, words the message holds)
    ("predict", "history", (), ["run history"]),
    ("predict", "history", ("--force",), ["run history"]),
    ("predict", "model", ("--force",), ["one of this command's inputs"]),
    ("predict", "other model", ("--force",), ["a saved model"]),
    ("predict", "results csv", ("--force",), ["a run's results CSV"]),
    ("predict", "epochs csv", ("--force",), ["a run's epoch history CSV"]),
    ("predict", "predictions", ("--force",), ["a run's saved predictions"]),
    ("predict", "test embeddings", ("--force",), ["one of this command's inputs"]),
    ("predict", "test tabular", ("--force",), ["one of this command's inputs"]),
    ("predict", "training embeddings", ("--force",), ["a data file with feature columns"]),
    ("predict", "table", ("--force",), ["not a submission CSV"]),
    ("predict", "notes", ("--force",), ["not a submission CSV", "only ever replaces an earlier one"]),
    ("predict", "a folder", ("--force",), ["is a folder", "Name a file inside it"]),
    ("predict", "submission", (), ["already holds a submission CSV", "--force"]),
    ("export", "history", ("--force",), ["run history"]),
    ("export", "other model", ("--force",), ["a saved model"]),
    ("export", "results csv", ("--force",), ["a run's results CSV"]),
    ("export", "test embeddings", ("--force",), ["a data file with feature columns"]),
    ("export", "submission", ("--force",), ["not an exported results table"]),
    ("export", "notes", ("--force",), ["not an exported results table", "only ever replaces an earlier one"]),
    ("export", "table", (), ["already holds an exported results table", "--force"]),
]


@pytest.mark.parametrize("command, target, extra, words", REFUSED,
                         ids=[f"{c} over {t} {' '.join(e)}" for c, t, e, _ in REFUSED])
def test_outputs_refuse_to_overwrite_what_the_user_keeps(run_cli, work, command, target, extra, words):
    write, flag = COMMANDS[command]
    before = fingerprint(work["folder"])
    outcome = write(run_cli, work, work[target], *extra)
    assert outcome.code == 2, outcome.err
    assert str(work[target]) in outcome.err and all(word in outcome.err for word in words), outcome.err
    assert f"with {flag}=PATH" in outcome.err
    assert fingerprint(work["folder"]) == before


def test_force_replaces_an_earlier_submission_and_an_earlier_table(run_cli, work, tmp_path):
    submission, table = tmp_path / "submission.csv", tmp_path / "table.md"
    shutil.copy(work["submission"], submission)
    shutil.copy(FIXTURES / "table_v0.1.0.md", table)  # as vggtab 0.1.0 exported it, without the status column

    assert predict(run_cli, work, submission, "--force").code == 0
    written = pd.read_csv(submission)
    assert len(written) == 10 and "Meow" not in written.columns  # the demo's classes, not the old file's
    assert export(run_cli, work, table, "--force").code == 0
    assert table.read_text().startswith("| approach | status |") and "both_logreg" in table.read_text()


def test_new_output_paths_are_written_without_force(run_cli, work, tmp_path):
    assert predict(run_cli, work, tmp_path / "new" / "submission.csv").code == 0
    assert export(run_cli, work, tmp_path / "table.csv").code == 0
    assert pd.read_csv(tmp_path / "table.csv")["status"].tolist() == ["finished", "finished"]


def test_a_refused_out_is_found_before_any_work(run_cli, work):
    """The target is checked first: here the model file does not even exist, and the message is about --out."""
    absent = {**work, "model": work["folder"] / "models" / "absent.pkl"}
    outcome = predict(run_cli, absent, work["history"])
    assert outcome.code == 2 and "run history" in outcome.err and "does not exist" not in outcome.err
