import csv
import errno
import json
import multiprocessing
import os
import pickle
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import RunConfig
from engine.errors import ConfigError, StorageError
from engine.events import RunRecord
from engine.store.files import atomic_write
from engine.store.history import HISTORY_FILE, append_record, load_history
from engine.store.models import export_model, load_model
from engine.store.names import new_run_id, timestamp
from engine.store.predictions import load_predictions, save_predictions
from engine.store.export import export_table
from engine.store.tables import write_run_csvs

NOTEBOOK_COLUMNS = ("timestamp", "model", "features", "vggish_features", "tabular_features", "num_classes",
                    "train_samples", "val_samples", "epochs", "learning_rate", "training_time_sec", "val_accuracy",
                    "error_rate", "num_params")


def make_record(index: int = 0, **changes) -> RunRecord:
    record = RunRecord(
        run_id=f"20250101_120000_{index:06x}", created="2025-01-01T12:00:00", status="finished",
        approach="both_200-100", config=RunConfig(lr=3e-3).to_dict(),
        metrics={"val_accuracy": 0.81, "error_rate": 0.19, "ci_low": 0.78, "ci_high": 0.84, "num_classes": 74,
                 "train_samples": 1600, "val_samples": 400, "vggish_features": 128, "tabular_features": 2474 - 1,
                 "n_features": 2601, "learning_rate": 3e-3},
        history=tuple({"epoch": e, "train_loss": 2.0 / e, "valid_loss": 2.5 / e, "accuracy": 0.4 + e / 100,
                       "error_rate": 0.6 - e / 100, "seconds": 1.5} for e in (1, 2, 3)),
        train_seconds=12.5, num_params=553_678, model_path="models/both_200-100_20250101_120000.pkl")
    return replace(record, **changes)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------------ atomic_write

def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


def test_atomic_write_keeps_the_old_file_when_the_writer_raises(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")

    def half_then_fail(tmp):
        tmp.write_text("half a ta")
        raise ValueError("writer bug")

    with pytest.raises(ValueError, match="writer bug"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error, advice", [
    (PermissionError(errno.EACCES, "Permission denied"), "Fix the permissions"),
    (OSError(errno.EROFS, "Read-only file system"), "mount it writable"),
    (OSError(errno.ENOSPC, "No space left on device"), "free some space"),
])
def test_atomic_write_turns_disk_errors_into_storage_errors(tmp_path, error, advice):
    target = tmp_path / "model.pkl"
    target.write_bytes(b"old model")

    def fail(tmp):
        tmp.write_bytes(b"partial")
        raise error

    with pytest.raises(StorageError) as caught:
        atomic_write(target, fail)
    message = str(caught.value)
    assert str(tmp_path) in message and advice in message and "pick another folder with results_dir=DIR" in message
    assert target.read_bytes() == b"old model"
    assert leftovers(tmp_path) == []


def test_atomic_write_under_a_file_names_the_folder(tmp_path):
    (tmp_path / "results").write_text("a file where a folder should be")
    with pytest.raises(StorageError, match=re.escape(str(tmp_path / "results"))):
        atomic_write(tmp_path / "results" / "run.csv", lambda tmp: tmp.write_text("x"))


def test_atomic_write_onto_a_folder_fails_cleanly(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(StorageError, match="taken"):
        atomic_write(tmp_path / "taken", lambda tmp: tmp.write_text("x"))
    assert (tmp_path / "taken").is_dir() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------------------------- history

def test_history_round_trips_records_in_order(tmp_path):
    records = [make_record(i) for i in range(3)]
    for record in records:
        append_record(tmp_path / "results", record)
    loaded = load_history(tmp_path / "results")
    assert loaded.records == records and loaded.warnings == []
    first_line = json.loads((tmp_path / "results" / HISTORY_FILE).read_text().splitlines()[0])
    assert first_line["schema"] == 1 and first_line["num_params"] == 553_678


def test_missing_history_is_empty_and_not_created(tmp_path):
    loaded = load_history(tmp_path / "results")
    assert loaded.records == [] and loaded.warnings == []
    assert not (tmp_path / "results").exists()


def test_nan_and_numpy_values_are_stored_as_strict_json(tmp_path):
    record = make_record(metrics={"val_accuracy": np.float32(0.5), "num_classes": np.int64(3)},
                         history=({"epoch": 1, "train_loss": float("nan"), "valid_loss": float("inf")},))
    append_record(tmp_path, record)
    text = (tmp_path / HISTORY_FILE).read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    [loaded] = load_history(tmp_path).records
    assert loaded.history[0]["train_loss"] is None and loaded.metrics == {"val_accuracy": 0.5, "num_classes": 3}


def test_torn_last_line_is_skipped_with_its_line_number_and_the_file_is_untouched(tmp_path):
    for i in range(2):
        append_record(tmp_path, make_record(i))
    path = tmp_path / HISTORY_FILE
    whole_line = path.read_bytes().splitlines(keepends=True)[0]
    with open(path, "ab") as handle:
        handle.write(whole_line[: len(whole_line) // 2])  # a process killed mid-write
    before = path.read_bytes()

    loaded = load_history(tmp_path)

    assert [r.run_id for r in loaded.records] == [make_record(i).run_id for i in range(2)]
    assert len(loaded.warnings) == 1 and "line 3" in loaded.warnings[0]
    assert path.read_bytes() == before


def test_an_append_after_a_torn_line_is_readable(tmp_path):
    append_record(tmp_path, make_record(0))
    path = tmp_path / HISTORY_FILE
    with open(path, "ab") as handle:
        handle.write(b'{"run_id": "torn", "created": "2025-')
    append_record(tmp_path, make_record(1))

    loaded = load_history(tmp_path)

    assert [r.run_id for r in loaded.records] == [make_record(0).run_id, make_record(1).run_id]
    assert len(loaded.warnings) == 1 and "line 2" in loaded.warnings[0]


def test_garbled_and_foreign_rows_are_skipped_and_old_rows_take_defaults(tmp_path):
    path = tmp_path / HISTORY_FILE
    minimal = {"run_id": "old", "created": "2024-05-01T09:00:00", "status": "finished", "approach": "emb",
               "config": {"features": "embeddings"}, "from_a_future_version": [1, 2]}
    lines = [
        json.dumps({**json.loads(json.dumps(make_record(0).__dict__)), "schema": 1}),
        "\x00\x00\x00garbage",
        json.dumps({"schema": 9, "id": "renamed-field"}),
        json.dumps(minimal),
        json.dumps({**minimal, "config": "not a dict"}),
        json.dumps({**minimal, "train_seconds": True}),
        json.dumps({**minimal, "history": [1, 2]}),
        "[1, 2, 3]",
    ]
    path.write_text("\n".join(lines) + "\n")

    loaded = load_history(tmp_path)

    assert [r.run_id for r in loaded.records] == [make_record(0).run_id, "old"]
    old = loaded.records[1]
    assert old.metrics == {} and old.history == () and old.num_params == 0 and old.split_id == ""
    assert [re.search(r"line (\d+)", w).group(1) for w in loaded.warnings] == ["2", "3", "5", "6", "7", "8"]
    assert "'run_id'" in loaded.warnings[1] and "'config'" in loaded.warnings[2]


def test_append_into_an_unusable_folder_is_a_storage_error(tmp_path):
    (tmp_path / "results").write_text("a file")
    with pytest.raises(StorageError, match="results"):
        append_record(tmp_path / "results", make_record())


def test_a_history_lock_held_too_long_is_a_storage_error_and_the_history_is_untouched(tmp_path, monkeypatch):
    from filelock import FileLock

    from engine.store import history

    append_record(tmp_path, make_record(0))
    before = (tmp_path / HISTORY_FILE).read_bytes()
    monkeypatch.setattr(history, "LOCK_TIMEOUT_SECONDS", 0.2)
    with FileLock(tmp_path / history.HISTORY_LOCK):  # another process stuck in the middle of an append
        with pytest.raises(StorageError, match=r"Another vggtab process has held .*history\.lock"):
            append_record(tmp_path, make_record(1))
        with pytest.raises(StorageError, match="Wait for it to finish"):
            load_history(tmp_path)
    assert (tmp_path / HISTORY_FILE).read_bytes() == before
    assert [r.run_id for r in load_history(tmp_path).records] == [make_record(0).run_id]


def test_a_reader_that_cannot_make_the_lock_file_reads_without_it(tmp_path, monkeypatch):
    """A read-only copy of a results folder (made here by refusing the lock file) still lists its runs; a
    writer there gets the usual disk error."""
    from filelock import FileLock

    append_record(tmp_path, make_record(0))
    (tmp_path / "history.lock").unlink()

    def read_only(self, *args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system", str(self.lock_file))

    monkeypatch.setattr(FileLock, "acquire", read_only)
    assert [r.run_id for r in load_history(tmp_path).records] == [make_record(0).run_id]
    with pytest.raises(StorageError, match="mount it writable"):
        append_record(tmp_path, make_record(1))


def append_many(results_dir, writer: int, count: int, start) -> None:
    start.wait()  # both processes begin together so their appends interleave
    for i in range(count):
        append_record(results_dir, make_record(writer * 100_000 + i, approach=f"writer{writer}"))


def test_two_processes_appending_at_once_lose_no_line(tmp_path):
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=append_many, args=(tmp_path, writer, 200, start)) for writer in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0, 0]

    lines = (tmp_path / HISTORY_FILE).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 401
    loaded = load_history(tmp_path)
    assert loaded.warnings == []
    expected = {make_record(w * 100_000 + i).run_id for w in (1, 2) for i in range(200)}
    assert {r.run_id for r in loaded.records} == expected
    for writer in (1, 2):  # each writer's own lines stay in its order
        ids = [r.run_id for r in loaded.records if r.approach == f"writer{writer}"]
        assert ids == sorted(ids)


# ------------------------------------------------------------------------------------------------ CSVs

def read_csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_csvs_hold_the_notebook_columns_and_one_row_per_epoch(tmp_path):
    record = make_record()
    results_path, history_path = write_run_csvs(tmp_path, record)

    assert results_path.name == "both_200-100_results_20250101_120000.csv"
    assert history_path.name == "both_200-100_history_20250101_120000.csv"
    [row] = read_csv_rows(results_path)
    assert set(NOTEBOOK_COLUMNS) <= set(row)
    assert (row["timestamp"], row["model"], row["features"], row["layers"]) == (
        "20250101_120000", "mlp", "both", "200-100")
    assert float(row["val_accuracy"]) == 0.81 and float(row["learning_rate"]) == 3e-3
    assert int(row["num_params"]) == 553_678 and int(row["num_classes"]) == 74
    assert float(row["training_time_sec"]) == 12.5 and int(row["epochs"]) == 20
    epochs = read_csv_rows(history_path)
    assert [int(e["epoch"]) for e in epochs] == [1, 2, 3]
    assert list(epochs[0]) == ["epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "seconds"]
    assert float(epochs[1]["train_loss"]) == 1.0
    assert leftovers(tmp_path) == []


def test_run_csvs_of_two_runs_in_the_same_second_do_not_overwrite(tmp_path):
    first = write_run_csvs(tmp_path, make_record(1))
    second = write_run_csvs(tmp_path, make_record(2))
    assert first[0] != second[0] and first[1] != second[1]
    assert read_csv_rows(first[0])[0]["run_id"] == make_record(1).run_id


def test_run_csv_names_survive_odd_approach_names(tmp_path):
    results_path, _ = write_run_csvs(tmp_path, make_record(approach="my run/v2"))
    assert results_path.parent == tmp_path and results_path.name.startswith("my-run-v2_results_")


# ----------------------------------------------------------------------------------------- predictions

def test_predictions_round_trip(tmp_path):
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    save_predictions(tmp_path, "run_1", ["a.wav", "b.wav"], ["Bark", "Meow", "Purr"], probs, [0, 2])
    saved = load_predictions(tmp_path, "run_1")
    assert saved.keys.tolist() == ["a.wav", "b.wav"] and saved.classes == ("Bark", "Meow", "Purr")
    np.testing.assert_array_equal(saved.probs, probs)
    np.testing.assert_array_equal(saved.targets, [0, 2])
    assert (tmp_path / "predictions" / "run_1.npz").is_file() and leftovers(tmp_path / "predictions") == []


def test_predictions_missing_or_damaged_are_storage_errors(tmp_path):
    with pytest.raises(StorageError, match="No saved predictions for run nope"):
        load_predictions(tmp_path, "nope")
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(StorageError, match="damaged"):
        load_predictions(tmp_path, "bad")
    with pytest.raises(StorageError, match="cannot name a file"):
        load_predictions(tmp_path, "../escape")


def test_predictions_of_the_wrong_shape_are_refused(tmp_path):
    with pytest.raises(ValueError, match="probs"):
        save_predictions(tmp_path, "run_1", ["a.wav"], ["Bark", "Meow"], [[0.5, 0.3, 0.2]], [0])


# ------------------------------------------------------------------------------------------ ids, table

def test_run_ids_sort_by_time_and_differ():
    first, second = new_run_id(), new_run_id()
    assert re.fullmatch(r"\d{8}_\d{6}_[0-9a-f]{6}", first) and first != second
    assert re.fullmatch(r"\d{8}_\d{6}", timestamp()) and first[:15] <= timestamp()


def test_export_table_as_csv_and_markdown_keeps_each_runs_status(tmp_path):
    records = [make_record(0), make_record(1, approach="emb | only", status="cancelled", metrics={})]
    rows = read_csv_rows(export_table(records, tmp_path / "out" / "table.csv", "csv"))
    assert [(r["approach"], r["status"]) for r in rows] == [("both_200-100", "finished"), ("emb | only", "cancelled")]
    assert float(rows[0]["val_accuracy"]) == 0.81 and float(rows[0]["ci_low"]) == 0.78
    assert rows[1]["val_accuracy"] == "" and rows[0]["layers"] == "200-100"

    markdown = export_table(records, tmp_path / "table.md", "markdown").read_text().splitlines()
    assert len(markdown) == 4 and markdown[0].startswith("| approach | status |")
    assert "| finished |" in markdown[2] and "81.00%" in markdown[2] and "78.0%–84.0%" in markdown[2]
    assert "553,678" in markdown[2]
    cancelled = [cell.strip() for cell in markdown[3].split(" | ")]
    assert cancelled[:2] == ["| emb \\| only", "cancelled"] and cancelled[6:9] == ["–", "–", "–"]
    assert "| |" not in markdown[3] and markdown[3].count(" | ") == markdown[0].count(" | ")


def test_export_table_refuses_an_unknown_format(tmp_path):
    with pytest.raises(ConfigError, match="xlsx"):
        export_table([make_record()], tmp_path / "t.xlsx", "xlsx")
    assert not (tmp_path / "t.xlsx").exists()


# ---------------------------------------------------------------------------------------------- models

class RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.fixture(scope="module")
def tiny_learner(tmp_path_factory):
    from fastai.tabular.all import Normalize, TabularDataLoaders, tabular_learner

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["f0", "f1", "f2"])
    frame["label"] = np.where(frame["f0"] > 0, "Bark", "Meow")
    dls = TabularDataLoaders.from_df(frame, path=tmp_path_factory.mktemp("fastai"), cont_names=["f0", "f1", "f2"],
                                     y_names="label", procs=[Normalize], bs=8, num_workers=0)
    return tabular_learner(dls, layers=[8]), frame


def test_exported_learner_loads_back_and_predicts_the_same(tmp_path, tiny_learner):
    learner, frame = tiny_learner
    path = export_model(learner, tmp_path / "models" / "tiny.pkl")
    assert leftovers(tmp_path / "models") == []

    loaded = load_model(path, models_dir=tmp_path / "models")

    before, _ = learner.get_preds(dl=learner.dls.test_dl(frame))
    after, _ = loaded.get_preds(dl=loaded.dls.test_dl(frame))
    assert after.shape == (40, 2)
    np.testing.assert_array_equal(before.numpy(), after.numpy())


def test_load_model_refuses_files_outside_models_dir_without_running_them(tmp_path):
    (tmp_path / "models").mkdir()
    marker = tmp_path / "code-ran"
    outside = tmp_path / "elsewhere.pkl"
    outside.write_bytes(pickle.dumps(RunsCodeWhenUnpickled(marker), protocol=2))

    for path in (outside, tmp_path / "models" / ".." / "elsewhere.pkl"):
        with pytest.raises(StorageError, match="allow_outside=true"):
            load_model(path, models_dir=tmp_path / "models")
    assert not marker.exists()


def test_load_model_allows_outside_files_when_asked(tmp_path, tiny_learner):
    path = export_model(tiny_learner[0], tmp_path / "shared" / "tiny.pkl")
    assert load_model(path, models_dir=tmp_path / "models", allow_outside=True).dls.vocab == ["Bark", "Meow"]


def test_export_into_an_unusable_models_folder_points_at_models_dir(tmp_path, tiny_learner):
    (tmp_path / "models").write_text("a file")
    with pytest.raises(StorageError, match="models_dir=DIR"):
        export_model(tiny_learner[0], tmp_path / "models" / "tiny.pkl")


def test_load_model_refuses_files_that_are_not_models(tmp_path, tiny_learner):
    import torch

    models = tmp_path / "models"
    export_model(tiny_learner[0], models / "whole.pkl")
    whole = (models / "whole.pkl").read_bytes()
    (models / "torn.pkl").write_bytes(whole[: len(whole) // 2])
    (models / "notes.pkl").write_text("just some text")
    torch.save({"weights": [1, 2, 3]}, models / "dict.pkl")

    for name in ("torn.pkl", "notes.pkl", "dict.pkl"):
        with pytest.raises(StorageError, match=f"{name} is not a vggtab model"):
            load_model(models / name, models_dir=models)
    with pytest.raises(StorageError, match="does not exist"):
        load_model(models / "absent.pkl", models_dir=models)


# ------------------------------------------------------------------------- folders written by v0.1.0

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_history_written_by_the_first_version_loads_unchanged(tmp_path, run_cli):
    """history_v0.1.0.jsonl is verbatim what vggtab 0.1.0 wrote: an MLP run, a logreg baseline, a failed run,
    a cancelled run and an ensemble of the first two."""
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(FIXTURES / "history_v0.1.0.jsonl", results / HISTORY_FILE)
    before = (results / HISTORY_FILE).read_bytes()

    loaded = load_history(results)

    assert loaded.warnings == []
    assert [(r.status, r.approach) for r in loaded.records] == [
        ("finished", "both_200-100"), ("finished", "both_logreg"), ("failed", "both_200-100"),
        ("cancelled", "cancelled-run"), ("finished", "ensemble(both_200-100 + both_logreg)")]
    mlp, logreg, failed, cancelled, ensemble = loaded.records
    assert mlp.metrics["val_accuracy"] == 0.3 and mlp.metrics["learning_rate"] == 0.001
    assert mlp.config["layers"] == [200, 100] and mlp.num_params == 50_698 and len(mlp.history) == 2
    assert mlp.history[1]["valid_loss"] == pytest.approx(1.7410748)
    assert logreg.config["model"] == "logreg" and logreg.metrics["val_accuracy"] == 0.8
    assert failed.message.startswith("Batch size 1000 is larger than the 39 train rows.")
    assert cancelled.message == "Cancelled after 2 of 3000 epochs." and len(cancelled.history) == 2
    assert ensemble.config["members"] == [mlp.run_id, logreg.run_id] and ensemble.split_id == mlp.split_id

    listing = run_cli("results", "--results-dir", str(results))
    assert listing.code == 0 and listing.err == ""
    rows = [line.split() for line in listing.out.splitlines()[1:]]
    assert [row[2] for row in rows] == ["finished", "finished", "failed", "cancelled", "finished"]
    assert [row[0] for row in rows] == [r.short_id for r in loaded.records]  # the id compare and predict take
    assert (results / HISTORY_FILE).read_bytes() == before


def test_history_lines_with_wrong_types_are_skipped_with_their_line_number(tmp_path, run_cli):
    """A hand-edited line with a string where a number belongs, or a list where a mapping belongs, costs that
    line only: the rest of the table loads and lists."""
    good = json.loads((FIXTURES / "history_v0.1.0.jsonl").read_text().splitlines()[0])

    def edited(**changes):
        row = json.loads(json.dumps(good))
        for path, value in changes.items():
            *parents, key = path.split("__")
            target = row
            for parent in parents:
                target = target[int(parent)] if isinstance(target, list) else target[parent]
            target[key] = value
        return json.dumps(row)

    broken = {
        2: (edited(metrics__val_accuracy="0.3"), "its metric 'val_accuracy' is '0.3', not a number or null"),
        3: (edited(config__lr="1e-3"), "its config 'lr' is '1e-3', not a number or null"),
        4: (edited(config__layers="200,100"), "its config 'layers' is '200,100', not a list of whole numbers or null"),
        5: (edited(config__epochs=2.5), "its config 'epochs' is 2.5, not a whole number or null"),
        6: (edited(metrics=[0.3, 0.7]), "its 'metrics' is [0.3, 0.7], not a mapping"),
        7: (edited(num_params="50698"), "its 'num_params' is '50698', not a whole number"),
        8: (edited(history=[[1, 2.0, 1.7]]), "its 'history' is [[1, 2.0, 1.7]], not a list of mappings"),
        9: (edited(history__0__train_loss="nan"), "its epoch 1 'train_loss' is 'nan', not a number or null"),
        10: (edited(metrics__lr_source=3), "its metric 'lr_source' is 3, not text"),
    }
    lines = [json.dumps(good)] + [line for line, _ in broken.values()] + [edited(config__epochs=None)]
    results = tmp_path / "results"
    results.mkdir()
    (results / HISTORY_FILE).write_text("\n".join(lines) + "\n")

    loaded = load_history(results)

    assert [r.config["epochs"] for r in loaded.records] == [2, None]  # null: a setting the run does not have
    assert len(loaded.warnings) == len(broken)
    for warning, (number, (_, reason)) in zip(loaded.warnings, broken.items()):
        assert f"line {number}: skipped, {reason}." in warning
    listing = run_cli("results", "--results-dir", str(results))
    assert listing.code == 0 and len(listing.out.splitlines()) == 3  # header and the two good runs
    assert [re.search(r"line (\d+): skipped", line).group(1) for line in listing.err.splitlines()] == [
        str(number) for number in broken]
