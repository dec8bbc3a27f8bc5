"""Bad input as the user meets it: `vggtab run` on a spoiled copy of the tiny demo set, asserting on the exit
code and the message printed. The CLI's `main` runs in this process (a subprocess per case would cost seconds
of imports each); tests/test_faults.py drives real subprocesses where the process itself matters."""

from __future__ import annotations

import builtins
import errno
import gzip
import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.errors import StorageError
from engine.store.history import load_history
from engine.store.models import load_model

QUICK_RUN = ("--epochs", "1", "--lr", "1e-3", "--bs", "16")


@dataclass
class Inputs:
    """The tiny demo's two tables, copied for one case to spoil; written to the case's folder when run."""

    folder: Path
    embeddings: pd.DataFrame | None  # None: no file is written
    tabular: pd.DataFrame | None
    embeddings_path: Path
    tabular_path: Path
    monkeypatch: pytest.MonkeyPatch

    def rename_clip(self, row: int, name: str) -> tuple[int, int]:
        """Give embeddings row `row` and its tabular partner the key `name`; returns both row positions."""
        key = self.embeddings["fname"].iloc[row]
        partner = int(np.flatnonzero(self.tabular["file"] == key)[0])
        self.embeddings.loc[self.embeddings.index[row], "fname"] = name
        self.tabular.loc[self.tabular.index[partner], "file"] = name
        return row, partner

    def single_label_rows(self) -> pd.Series:
        return ~self.embeddings["labels"].str.contains(",")


@pytest.fixture(scope="module")
def demo_tables(tiny_demo):
    text = {"fname": str, "file": str, "labels": str}
    return pd.read_csv(tiny_demo.embeddings, dtype=text), pd.read_csv(tiny_demo.tabular, dtype=text)


@pytest.fixture
def inputs(tmp_path, demo_tables, monkeypatch):
    embeddings, tabular = demo_tables
    return Inputs(tmp_path, embeddings.copy(), tabular.copy(), tmp_path / "emb.csv", tmp_path / "tab.csv",
                  monkeypatch)


@pytest.fixture
def vggtab(tmp_path, monkeypatch, run_cli):
    """`vggtab run` on the case's files from the case's folder (models/ and results/ land there)."""
    monkeypatch.chdir(tmp_path)

    def run(inputs: Inputs, *args: str):
        for frame, path in ((inputs.embeddings, inputs.embeddings_path), (inputs.tabular, inputs.tabular_path)):
            if frame is not None and not path.exists():
                frame.to_csv(path, index=False)
        return run_cli("run", "--embeddings", str(inputs.embeddings_path), "--tabular", str(inputs.tabular_path),
                       *QUICK_RUN, *args)

    return run


# ------------------------------------------------------------------------------------------ spoilers

def missing_file(inputs: Inputs) -> None:
    inputs.embeddings, inputs.embeddings_path = None, inputs.folder / "no-such-file.csv"


def directory(inputs: Inputs) -> None:
    inputs.embeddings_path.mkdir()


def empty_file(inputs: Inputs) -> None:
    inputs.embeddings_path.write_bytes(b"")


def pickled_frame(inputs: Inputs) -> None:
    inputs.embeddings_path.write_bytes(pickle.dumps(inputs.embeddings))


def csv_named_parquet(inputs: Inputs) -> None:
    inputs.tabular_path = inputs.folder / "tab.parquet"
    inputs.tabular.to_csv(inputs.tabular_path, index=False)


def broken_line(inputs: Inputs) -> None:
    lines = inputs.embeddings.to_csv(index=False).splitlines()
    lines[5] += ",7,8"  # file line 6: two cells too many
    inputs.embeddings_path.write_text("\n".join(lines) + "\n")


def key_renamed(inputs: Inputs) -> None:
    inputs.embeddings = inputs.embeddings.rename(columns={"fname": "clip"})


def keys_do_not_overlap(inputs: Inputs) -> None:
    inputs.embeddings["fname"] = [f"emb_only_{i}.wav" for i in range(len(inputs.embeddings))]
    inputs.tabular["file"] = [f"tab_only_{i}.wav" for i in range(len(inputs.tabular))]


def duplicate_keys(inputs: Inputs) -> None:
    inputs.embeddings = pd.concat([inputs.embeddings, inputs.embeddings.iloc[:3]])


def no_labels_column(inputs: Inputs) -> None:
    inputs.embeddings = inputs.embeddings.drop(columns="labels")


def some_labels_empty(inputs: Inputs) -> None:
    row, _ = inputs.rename_clip(0, "unlabelled.wav")
    inputs.embeddings.loc[inputs.embeddings.index[[row, 10, 20]], "labels"] = ""


def text_in_a_feature(inputs: Inputs) -> None:
    _, partner = inputs.rename_clip(0, "texty.wav")
    inputs.tabular = inputs.tabular.astype({"stft_mean_2": object})
    inputs.tabular.loc[inputs.tabular.index[partner], "stft_mean_2"] = "abc"


def all_nan_column(inputs: Inputs) -> None:
    inputs.tabular["mel_mean_1"] = np.nan


def infinities(inputs: Inputs) -> None:
    row, _ = inputs.rename_clip(1, "plus_inf.wav")
    inputs.embeddings.loc[inputs.embeddings.index[row], "emb_3"] = np.inf
    _, partner = inputs.rename_clip(2, "minus_inf.wav")
    inputs.tabular.loc[inputs.tabular.index[partner], "mel_std_0"] = -np.inf


def constant_column(inputs: Inputs) -> None:
    inputs.embeddings["emb_5"] = 7.0


def one_class_left(inputs: Inputs) -> None:
    single = inputs.single_label_rows()
    inputs.embeddings.loc[single, "labels"] = "Bark"


def class_with_one_clip(inputs: Inputs) -> None:
    inputs.embeddings.loc[inputs.embeddings.index[0], "labels"] = "Meow"


def fewer_rows_than_a_batch(inputs: Inputs) -> None:
    single = inputs.embeddings[inputs.single_label_rows()]
    inputs.embeddings = single.groupby("labels").head(2)  # 12 clips: 9 train, 3 valid


def embeddings_columns_renamed(inputs: Inputs) -> None:
    inputs.embeddings.columns = [c.replace("emb_", "vggish_") for c in inputs.embeddings.columns]


def results_folder_is_a_file(inputs: Inputs) -> None:
    (inputs.folder / "results").write_text("not a folder")


def models_folder_is_a_file(inputs: Inputs) -> None:
    (inputs.folder / "models").write_text("not a folder")


def byte_order_mark(inputs: Inputs) -> None:
    inputs.embeddings_path.write_text(inputs.embeddings.to_csv(index=False), encoding="utf-8-sig")


def pipe_delimited(inputs: Inputs) -> None:
    inputs.tabular_path.write_text(inputs.tabular.to_csv(index=False, sep="|"))


def beyond_float32(inputs: Inputs) -> None:
    _, partner = inputs.rename_clip(2, "huge.wav")
    inputs.tabular.loc[inputs.tabular.index[partner], "stft_mean_1"] = 1e39


def untouched(inputs: Inputs) -> None:
    pass


ERROR, RAN = 2, 0
CASES = [
    # (spoil, extra arguments, exit code, fragments of what the user reads)
    pytest.param(missing_file, (), ERROR, ["no-such-file.csv does not exist", "vggtab demo"], id="missing path"),
    pytest.param(directory, (), ERROR, ["emb.csv is a directory, not a file", "file inside it"], id="directory"),
    pytest.param(empty_file, (), ERROR, ["emb.csv is empty", "CSV or Parquet"], id="empty file"),
    pytest.param(pickled_frame, (), ERROR, ["emb.csv is not a CSV or Parquet file: it looks like a Python pickle",
                                            "df.to_csv"], id="not CSV"),
    pytest.param(csv_named_parquet, (), ERROR, ["tab.parquet is named like a Parquet file but is not one",
                                                "give the CSV"], id="not Parquet"),
    pytest.param(broken_line, (), ERROR, ["emb.csv line 6: expected 130 columns, got 132",
                                          "Fix or delete that line"], id="broken line"),
    pytest.param(key_renamed, (), ERROR, ["emb.csv has no key column (fname or file)", "Columns: clip, labels",
                                          "Set --key to the column"], id="no key column"),
    pytest.param(key_renamed, ("--key", "clip"), RAN, ["Valid accuracy"], id="key named with --key"),
    pytest.param(key_renamed, ("--key", "clp"), ERROR, ["emb.csv has no column 'clp'", "Columns: clip"],
                 id="--key misspelt"),
    pytest.param(keys_do_not_overlap, (), ERROR, ["No fname in", "matches a file in",
                                                  "emb_only_0.wav, emb_only_1.wav, emb_only_2.wav",
                                                  "tab_only_0.wav, tab_only_1.wav, tab_only_2.wav",
                                                  "set --key to the column"],
                 id="keys do not overlap"),
    pytest.param(duplicate_keys, (), RAN, ["warning: 3 fname values appear more than once in",
                                           "kept the first row of each"], id="duplicate keys"),
    pytest.param(no_labels_column, (), ERROR, ["Neither", "has a 'labels' column", "Add the clips' labels"],
                 id="no labels column"),
    pytest.param(some_labels_empty, (), RAN, ["dropped unlabelled.wav: no labels",
                                              "warning: 3 clips have no label; they are left out"],
                 id="labels empty for some rows"),
    pytest.param(text_in_a_feature, (), ERROR, ["Feature column stft_mean_2 holds text, not numbers: fname "
                                                "texty.wav has 'abc'", "Fix or blank that value"],
                 id="text in a feature column"),
    pytest.param(all_nan_column, (), RAN, ["warning: Columns mel_mean_1 hold no values at all; they were dropped"],
                 id="all-NaN column"),
    pytest.param(infinities, (), RAN, ["dropped plus_inf.wav: inf in emb_3", "dropped minus_inf.wav: inf in mel_std_0"],
                 id="inf values"),
    pytest.param(byte_order_mark, (), RAN, ["Valid accuracy"], id="UTF-8 byte order mark"),
    pytest.param(pipe_delimited, (), RAN, ["Valid accuracy"], id="pipe-delimited"),
    pytest.param(beyond_float32, (), RAN, ["dropped huge.wav: beyond float32 (±3.4e38) in stft_mean_1 = 1e+39"],
                 id="value beyond float32, dropped"),
    pytest.param(beyond_float32, ("--bad-rows", "impute"), RAN,
                 ["imputed huge.wav: beyond float32 (±3.4e38) in stft_mean_1 = 1e+39", "Valid accuracy"],
                 id="value beyond float32, imputed"),
    pytest.param(constant_column, (), RAN, ["warning: Columns emb_5 have one value in every row"],
                 id="constant column"),
    pytest.param(one_class_left, (), ERROR, ["Training needs at least 2 classes, but only 'Bark'",
                                             "--label-mode=multi"], id="one class left"),
    pytest.param(class_with_one_clip, (), RAN, ["too few to stratify; they are in train only: Meow (1)"],
                 id="class with one clip"),
    pytest.param(fewer_rows_than_a_batch, ("--bs", "64"), ERROR, ["Batch size 64 is larger than the 9 train rows",
                                                                 "at most 9"], id="fewer rows than a batch"),
    pytest.param(untouched, ("--bs", "5000"), ERROR, ["Batch size 5000 is larger than the"],
                 id="batch larger than train set"),
    pytest.param(untouched, ("--bs", "1"), ERROR, ["bs=1", "2 or more"], id="batch of one"),
    pytest.param(untouched, ("--features", "zzz_"), ERROR, ["No feature column starts with zzz_",
                                                            "Feature groups in the table: emb (128)"],
                 id="prefix selects nothing"),
    pytest.param(embeddings_columns_renamed, ("--features", "embeddings"), ERROR,
                 ["No feature column starts with emb_", "Pick a feature set from the groups present"],
                 id="feature set selects nothing"),
    pytest.param(untouched, ("--layers", "200,,100"), ERROR, ["Layers '200,,100' have an empty item", "200,100"],
                 id="layers with an empty item"),
    pytest.param(untouched, ("--layers=-5",), ERROR, ["Layer size '-5' in '-5' is not a positive whole number"],
                 id="negative layer"),
    pytest.param(untouched, ("--epochs", "0"), ERROR, ["epochs=0", "whole number of 1 or more"], id="epochs 0"),
    pytest.param(untouched, ("--epochs=-3",), ERROR, ["epochs=-3", "whole number of 1 or more"], id="epochs negative"),
    pytest.param(untouched, ("--lr", "fast"), ERROR, ["Learning rate 'fast' is not a number", "'auto'"],
                 id="lr not a number"),
    pytest.param(untouched, ("--lr", "0"), ERROR, ["Learning rate 0.0 is not usable", "above 0 and at most 10"],
                 id="lr zero"),
    pytest.param(untouched, ("--lr=-1e-3",), ERROR, ["Learning rate -0.001 is not usable"], id="lr negative"),
    pytest.param(untouched, ("--lr", "11"), ERROR, ["Learning rate 11.0 is not usable", "at most 10"],
                 id="lr above 10"),
    pytest.param(results_folder_is_a_file, (), ERROR, ["results is a file, not a folder", "--results-dir",
                                                       "not recorded: the history could not be written"],
                 id="results folder is a file"),
    pytest.param(models_folder_is_a_file, (), ERROR, ["models is a file, not a folder", "--models-dir"],
                 id="models folder is a file"),
]


@pytest.mark.parametrize("spoil, args, code, expected", CASES)
def test_each_bad_input_gets_its_own_message(vggtab, inputs, spoil, args, code, expected):
    spoil(inputs)
    outcome = vggtab(inputs, *args)

    shown = outcome.out + outcome.err
    assert outcome.code == code, shown
    for fragment in expected:
        assert fragment in shown
    if code == ERROR:
        assert outcome.err.startswith("vggtab: ") and outcome.err.count("\n") <= 3  # a message, not a dump


def test_a_run_refused_for_its_data_is_recorded_as_failed_with_the_message(vggtab, inputs):
    no_labels_column(inputs)
    outcome = vggtab(inputs)

    [record] = load_history(inputs.folder / "results").records
    assert record.status == "failed" and record.message in outcome.err
    assert "Run failed (recorded in the history)." in outcome.out


# ------------------------------------------------------------------------------ storage faults at save

def read_only(monkeypatch, folder: Path) -> None:
    """As root, chmod does not stop writes: refuse every open-for-writing under `folder` like a read-only mount."""
    real_open = os.open

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and Path(path).absolute().is_relative_to(folder):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", open_)


def full_disk(monkeypatch, folder: Path) -> None:
    """Files can be opened but no rename, link or append completes, as when the disk fills during the save."""
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    for name in ("replace", "link", "write"):
        monkeypatch.setattr(os, name, no_space)


def saved_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.parent.name in ("models", "results", "predictions") and p.name != "history.lock"}


@pytest.mark.parametrize("fault, expected", [
    (read_only, ["Could not write files in", "Read-only file system", "Fix the permissions", "--results-dir"]),
    (full_disk, ["Could not write", ".pkl in", "No space left on device", "is full: free some space"]),
])
def test_an_unwritable_or_full_results_disk_loses_nothing_saved_before(vggtab, inputs, monkeypatch, fault,
                                                                       expected):
    assert vggtab(inputs).code == RAN
    before = saved_files(inputs.folder)
    assert any(name.endswith(".pkl") for name in before) and any(name.endswith(".csv") for name in before)

    fault(monkeypatch, inputs.folder / "results")
    outcome = vggtab(inputs)
    monkeypatch.undo()

    assert outcome.code == ERROR
    for fragment in expected:
        assert fragment in outcome.err
    assert "Run failed (not recorded: the history could not be written)." in outcome.out
    assert saved_files(inputs.folder) == before
    assert [r.status for r in load_history(inputs.folder / "results").records] == ["finished"]


# ------------------------------------------------------------------------------ models from elsewhere

@pytest.mark.parametrize("name, content", [
    ("classifier.pkl", pickle.dumps({"coef_": [0.1, 0.2], "classes_": ["Bark", "Meow"]})),  # sklearn/joblib-like
    ("weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64)),  # Keras
    ("model.onnx", b"\x08\x07\x12\x07pytorch" + bytes(32)),
])
def test_a_model_file_from_another_tool_is_refused_by_name(tmp_path, name, content):
    models = tmp_path / "models"
    models.mkdir()
    (models / name).write_bytes(content)
    with pytest.raises(StorageError, match=rf"{name} is not a vggtab model\.\nPick a file that vggtab saved"):
        load_model(models / name, models_dir=models)


# ------------------------------------------------------------------- more bad input, after earlier runs
# Each case starts from the results and models of an earlier good run, and must leave every byte of them as it
# was (the history may only grow by the refused run's own line).

def tabular_directory(inputs: Inputs) -> None:
    inputs.tabular_path.mkdir()


def blank_lines_only(inputs: Inputs) -> None:
    inputs.tabular_path.write_text("\n\n   \n")


def header_only(inputs: Inputs) -> None:
    inputs.tabular_path.write_text(",".join(inputs.tabular.columns) + "\n")


def latin1_label(inputs: Inputs) -> None:
    inputs.embeddings.loc[inputs.embeddings.index[4], "labels"] = "Caf\u00e9"
    inputs.embeddings_path.write_bytes(inputs.embeddings.to_csv(index=False).encode("latin-1"))


def utf16_text(inputs: Inputs) -> None:
    inputs.embeddings_path.write_text(inputs.embeddings.to_csv(index=False), encoding="utf-16")


def gzipped_csv(inputs: Inputs) -> None:
    inputs.tabular_path.write_bytes(gzip.compress(inputs.tabular.to_csv(index=False).encode()))


def excel_file(inputs: Inputs) -> None:
    with zipfile.ZipFile(inputs.tabular_path, "w") as sheet:
        sheet.writestr("xl/workbook.xml", "<workbook/>")


def numpy_array(inputs: Inputs) -> None:
    with open(inputs.embeddings_path, "wb") as handle:
        np.save(handle, np.zeros((3, 3)))


def damaged_parquet(inputs: Inputs) -> None:
    inputs.tabular_path = inputs.folder / "tab.parquet"
    inputs.tabular_path.write_bytes(b"PAR1" + bytes(range(256)) * 4)


def parquet_without_key(inputs: Inputs) -> None:
    inputs.tabular_path = inputs.folder / "tab.parquet"
    inputs.tabular.drop(columns="file").to_parquet(inputs.tabular_path)


def parquet_without_rows(inputs: Inputs) -> None:
    inputs.tabular_path = inputs.folder / "tab.parquet"
    inputs.tabular.iloc[:0].to_parquet(inputs.tabular_path)


def repeated_column(inputs: Inputs) -> None:
    text = inputs.tabular.to_csv(index=False)
    header, rest = text.split("\n", 1)
    inputs.tabular_path.write_text(header.replace("mel_std_1", "mel_std_0") + "\n" + rest)


def cut_off_last_row(inputs: Inputs) -> None:
    text = inputs.tabular.to_csv(index=False)
    inputs.tabular_path.write_text(text[:text.rstrip("\n").rfind(",")] + "\n")


def text_in_an_embedding(inputs: Inputs) -> None:
    _, partner = inputs.rename_clip(3, "wordy.wav")
    inputs.embeddings = inputs.embeddings.astype({"emb_4": object})
    inputs.embeddings.loc[inputs.embeddings.index[3], "emb_4"] = "n.a."


def every_row_has_a_gap(inputs: Inputs) -> None:
    even = np.arange(len(inputs.tabular)) % 2 == 0
    inputs.tabular.loc[even, "mel_mean_0"] = np.nan
    inputs.tabular.loc[~even, "cqt_mean_0"] = np.nan


def every_row_overflows(inputs: Inputs) -> None:
    inputs.tabular["stft_mean_1"] = 1e39


def every_label_blank(inputs: Inputs) -> None:
    inputs.embeddings["labels"] = ""


def only_multi_label_clips(inputs: Inputs) -> None:
    inputs.embeddings["labels"] = "Bark,Growl"


def every_key_blank(inputs: Inputs) -> None:
    inputs.embeddings["fname"] = ""


def most_keys_upper_case(inputs: Inputs) -> None:
    inputs.tabular.loc[inputs.tabular.index[5:], "file"] = inputs.tabular["file"][5:].str.upper()


def keys_collide_when_normalised(inputs: Inputs) -> None:
    inputs.embeddings = pd.concat([inputs.embeddings, inputs.embeddings.iloc[:1].assign(
        fname=lambda f: f["fname"].str.upper())])


def key_column_without_features(inputs: Inputs) -> None:
    inputs.tabular = inputs.tabular[["file"]]


def unreadable_file(inputs: Inputs) -> None:
    """As root, chmod does not stop reads: refuse opening the file as a permission-less mount would."""
    real_open, refused = builtins.open, str(inputs.tabular_path.resolve())

    def open_(file, *args, **kwargs):
        if str(file) == refused:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), refused)
        return real_open(file, *args, **kwargs)
    inputs.tabular.to_csv(inputs.tabular_path, index=False)
    inputs.monkeypatch.setattr(builtins, "open", open_)


def named_pipe(inputs: Inputs) -> None:
    os.mkfifo(inputs.tabular_path)


def broken_symlink(inputs: Inputs) -> None:
    inputs.tabular = None
    inputs.tabular_path.symlink_to(inputs.folder / "moved-away.csv")


MORE_CASES = [
    pytest.param(tabular_directory, (), ["tab.csv is a directory, not a file"], id="tabular is a directory"),
    pytest.param(blank_lines_only, (), ["tab.csv is empty"], id="blank lines only"),
    pytest.param(header_only, (), ["tab.csv has column names but no rows"], id="header without rows"),
    pytest.param(latin1_label, (), ["emb.csv line 6 is not UTF-8", "Re-save the file as UTF-8"],
                 id="latin-1 label"),
    pytest.param(utf16_text, (), ["emb.csv is not a CSV or Parquet file: it looks like UTF-16 text",
                                  "Re-save the file as UTF-8"], id="UTF-16 text"),
    pytest.param(gzipped_csv, (), ["tab.csv is not a CSV or Parquet file: it looks like gzip", "gunzip"],
                 id="gzipped CSV"),
    pytest.param(excel_file, (), ["tab.csv is not a CSV or Parquet file: it looks like a zip or Excel file",
                                  "save the sheet as CSV"], id="Excel file"),
    pytest.param(numpy_array, (), ["emb.csv is not a CSV or Parquet file: it looks like a NumPy array"],
                 id="NumPy array"),
    pytest.param(damaged_parquet, (), ["tab.parquet is a damaged Parquet file", "Export it again"],
                 id="damaged Parquet"),
    pytest.param(parquet_without_key, (), ["tab.parquet has no key column (fname or file)",
                                           "Set --key to the column"], id="Parquet without a key"),
    pytest.param(parquet_without_rows, (), ["tab.parquet has column names but no rows"], id="Parquet without rows"),
    pytest.param(repeated_column, (), ["tab.csv has columns that appear more than once: mel_std_0"],
                 id="repeated column name"),
    pytest.param(cut_off_last_row, (), ["tab.csv line", "expected", "columns, got", "Fix or delete that line"],
                 id="cut-off last row"),
    pytest.param(text_in_an_embedding, (), ["Feature column emb_4 holds text, not numbers: fname wordy.wav has "
                                            "'n.a.'"], id="text in an embedding"),
    pytest.param(every_row_has_a_gap, (), ["Every row has NaN, inf or a value beyond float32 in some feature",
                                           "impute"], id="every row has a gap"),
    pytest.param(every_row_overflows, (), ["Every row has NaN, inf or a value beyond float32",
                                           "most often in stft_mean_1"], id="every row overflows float32"),
    pytest.param(every_label_blank, (), ["Training needs at least 2 classes, but none is left"],
                 id="every label blank"),
    pytest.param(only_multi_label_clips, (), ["Training needs at least 2 classes, but none is left",
                                              "label-mode=multi"], id="only multi-label clips"),
    pytest.param(every_key_blank, (), ["No fname in", "matches a file in"], id="every key blank"),
    pytest.param(most_keys_upper_case, (), ["clips matched as written, but", "tab.csv match one when case, folders "
                                            "and extension case are ignored",
                                       "--key-normalise=on"], id="most keys in upper case"),
    pytest.param(keys_collide_when_normalised, ("--key-normalise", "on"),
                 ["With --key-normalise=on, 1 fname values of", "become the same as another"],
                 id="keys collide when normalised"),
    pytest.param(key_column_without_features, ("--features", "tabular"), ["No feature column starts with stft_"],
                 id="tabular file without features"),
    pytest.param(unreadable_file, (), ["tab.csv cannot be read: permission denied", "chmod"],
                 id="unreadable file"),
    pytest.param(named_pipe, (), ["tab.csv is not a regular file (a pipe or a device)", "Save the table to a file"],
                 id="named pipe"),
    pytest.param(broken_symlink, (), ["tab.csv does not exist"], id="broken symlink"),
    pytest.param(untouched, ("--bad-rows", "keep"), ["--bad-rows='keep' is not valid", "drop, impute"],
                 id="bad_rows choice"),
    pytest.param(untouched, ("--label-mode", "both"), ["--label-mode='both' is not valid", "single, multi"],
                 id="label_mode choice"),
    pytest.param(untouched, ("--key-normalise", "yes"), ["--key-normalise='yes' is not valid", "off, on"],
                 id="key_normalise choice"),
    pytest.param(untouched, ("--valid-pct", "1.5"), ["--valid-pct=1.5 is not valid"], id="valid_pct above 1"),
    pytest.param(untouched, ("--valid-pct", "0"), ["--valid-pct=0.0 is not valid"], id="valid_pct zero"),
    pytest.param(untouched, ("--n-folds", "1"), ["--n-folds=1 is not valid"], id="one fold"),
    pytest.param(untouched, ("--fold", "7"), ["fold=7 is not valid", "from 0 to 4"], id="fold out of range"),
    pytest.param(untouched, ("--split-seed=-1",), ["--split-seed=-1 is not valid"], id="negative split seed"),
    pytest.param(untouched, ("--wd", "1e10"), ["--wd=10000000000.0 is not valid", "up to 10"], id="huge wd"),
    pytest.param(untouched, ("--ps", "1"), ["--ps=1.0 is not valid"], id="dropout of 1"),
    pytest.param(untouched, ("--select-k", "0"), ["--select-k=0 is not valid"], id="top-K of 0"),
    pytest.param(untouched, ("--threads", "0"), ["--threads=0 is not valid"], id="no threads"),
    pytest.param(untouched, ("--features", "emb,,mel"), ["Feature set 'emb,,mel' is empty or has an empty item"],
                 id="feature set with an empty item"),
]


@pytest.fixture(scope="module")
def earlier_results(tmp_path_factory, demo_tables):
    """results/ and models/ of one good run on the tiny demo, made once for the module."""
    from tui import cli
    folder = tmp_path_factory.mktemp("earlier")
    embeddings, tabular = demo_tables
    embeddings.to_csv(folder / "emb.csv", index=False)
    tabular.to_csv(folder / "tab.csv", index=False)
    code = cli.main(["run", "--embeddings", str(folder / "emb.csv"), "--tabular", str(folder / "tab.csv"),
                     "--results-dir", str(folder / "results"), "--models-dir", str(folder / "models"), *QUICK_RUN])
    assert code == RAN
    return folder


@pytest.mark.parametrize("spoil, args, expected", MORE_CASES)
def test_bad_input_after_earlier_runs_is_refused_and_keeps_them(vggtab, inputs, earlier_results, monkeypatch, spoil,
                                                                args, expected):
    for name in ("results", "models"):
        shutil.copytree(earlier_results / name, inputs.folder / name)
    before = saved_files(inputs.folder)
    assert before
    spoil(inputs)
    outcome = vggtab(inputs, *args)
    monkeypatch.undo()

    shown = outcome.out + outcome.err
    assert outcome.code == ERROR, shown
    for fragment in expected:
        assert fragment in shown
    after = saved_files(inputs.folder)
    for name, content in before.items():
        if name.endswith("history.jsonl"):
            assert after[name].startswith(content)  # a refused run may add its own "failed" line, nothing else
        else:
            assert after[name] == content, name
