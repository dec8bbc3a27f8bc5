"""The prepared-data caches: a second launch on unchanged files reuses the merged, audited and labelled rows, and
the split and model inputs, from disk; an edit of either file, or a change of a setting those steps read, builds
them again."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from engine.clean import CleanData
from engine.config import RunConfig
from engine.events import DatasetSummarised, StageDone
from engine.labels import Labelled
from engine.load import wait_for_cache_writes
from engine.pipeline import Session
from tests.conftest import edit_keeping_size_and_mtime

CACHED = "merged, audited and labelled rows from cache"
PREPARED = "split and model inputs from cache"


@pytest.fixture
def files(small_demo, tmp_path):
    embeddings, tabular = tmp_path / "embeddings.csv", tmp_path / "tabular.csv"
    shutil.copy(small_demo.embeddings, embeddings)
    shutil.copy(small_demo.tabular, tabular)
    return embeddings, tabular


def launch(config: RunConfig):
    """A new Session, as a new launch of the app or the CLI makes; returns what it reported and prepared, and
    which cache it read: '' (none), 'clean' (the rows) or 'prepared' (the split and model inputs too)."""
    events = []
    prepared = Session(events.append).prepare(config)
    wait_for_cache_writes()
    details = [e.detail for e in events if isinstance(e, StageDone)]
    source = "prepared" if any(PREPARED in d for d in details) else "clean" if any(CACHED in d for d in details) else ""
    [summary] = [e.summary for e in events if isinstance(e, DatasetSummarised)]
    return source, summary, prepared


def test_a_second_launch_reads_the_same_data_from_the_cache(files):
    config = RunConfig(embeddings=str(files[0]), tabular=str(files[1]))
    built, summary, prepared = launch(config)
    cached, summary_again, prepared_again = launch(config)

    assert built == "" and cached == "prepared"
    assert summary_again == summary and summary.dropped  # the demo's NaN row is still named
    for name in ("x_train", "x_valid", "targets", "train_idx", "valid_idx", "keys"):
        np.testing.assert_array_equal(getattr(prepared_again, name), getattr(prepared, name), err_msg=name)
    assert prepared_again.classes == prepared.classes and prepared_again.split_id == prepared.split_id
    # the fitted transform, kept pickled, makes the same inputs from the same rows
    frame = Session().clean_data(config).labelled.frame
    np.testing.assert_array_equal(prepared_again.transform.transform(frame, rows=prepared.valid_idx), prepared.x_valid)


def test_a_launch_from_the_cache_is_ready_without_pandas_work_or_scikit_learn(files):
    """What makes a warm start ready in well under 2 s: no merge, audit or features, and no scikit-learn import
    (which the warm-up thread would otherwise have to finish first)."""
    config = RunConfig(embeddings=str(files[0]), tabular=str(files[1]))
    launch(config)
    folder = files[0].parent
    script = "\n".join([
        "import sys", "from engine.config import RunConfig", "from engine.workbench import Workbench",
        f"bench = Workbench(models_dir={str(folder / 'models')!r}, results_dir={str(folder / 'results')!r})",
        f"bench.prepare(RunConfig(embeddings={str(files[0])!r}, tabular={str(files[1])!r}))",
        "print(sorted(m for m in ('sklearn', 'torch', 'fastai') if m in sys.modules))"])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1], env=dict(os.environ))
    assert done.stdout.strip() == "[]", done.stderr


def test_another_feature_set_reuses_the_rows_but_builds_its_own_inputs(files):
    config = RunConfig(embeddings=str(files[0]), tabular=str(files[1]))
    launch(config)
    assert launch(config.with_(features="embeddings"))[0] == "clean"
    assert launch(config.with_(features="embeddings"))[0] == "prepared"


def test_the_cached_rows_and_facts_equal_the_built_ones(files):
    config = RunConfig(embeddings=str(files[0]), tabular=str(files[1]), bad_rows="impute", label_mode="multi")
    built = Session().clean_data(config)
    wait_for_cache_writes()
    cached = Session().clean_data(config)

    pd.testing.assert_frame_equal(cached.labelled.frame, built.labelled.frame)
    for holder, other, kind in ((cached, built, CleanData), (cached.labelled, built.labelled, Labelled)):
        for field in fields(kind):
            if field.name not in ("labelled", "frame"):
                assert getattr(holder, field.name) == getattr(other, field.name), field.name
    assert cached.bad_rows and cached.label_counts[2] > 0  # imputed rows and multi-label clips are there


def test_an_edit_of_the_embeddings_file_builds_again(files):
    config = RunConfig(embeddings=str(files[0]), tabular=str(files[1]))
    launch(config)
    frame = pd.read_csv(files[0], dtype={"fname": str, "labels": str})
    label = frame["labels"][~frame["labels"].str.contains(",")].iloc[0]
    renamed = label[:-1] + ("Z" if label[-1] != "Z" else "Y")

    edit_keeping_size_and_mtime(files[0], label, renamed)  # each line's first mention, quoted or not

    cached, summary, _ = launch(config)
    assert cached == "" and renamed in summary.class_sizes and label not in summary.class_sizes


def test_an_edit_of_the_tabular_file_builds_again(files):
    config = RunConfig(embeddings=str(files[0]), tabular=str(files[1]), features="tabular")
    _, _, before = launch(config)

    edit_keeping_size_and_mtime(files[1], ",1", ",2")  # the first such value of every row

    cached, _, after = launch(config)
    assert cached == "" and not np.array_equal(after.x_train, before.x_train)


@pytest.mark.parametrize("change", [dict(bad_rows="impute"), dict(label_mode="multi"), dict(key="fname"),
                                    dict(features="emb_,mel_mean")], ids=str)
def test_a_setting_the_steps_read_builds_again_and_others_do_not(files, change):
    config = RunConfig(embeddings=str(files[0]), tabular=str(files[1]))
    launch(config)
    assert launch(config.with_(epochs=3, valid_pct=0.3, features="embeddings", seed=1))[0] == "clean"
    assert launch(config.with_(**change))[0] == ""


def test_a_damaged_cache_file_is_built_again(files, tmp_path):
    config = RunConfig(embeddings=str(files[0]), tabular=str(files[1]))
    launch(config)
    cache = tmp_path / "cache"
    [clean_file] = cache.glob("clean-*.arrow")
    [prepared_file] = cache.glob("prepared-*.pickle")
    clean_file.write_bytes(b"ARROW1 but cut off")
    prepared_file.write_bytes(prepared_file.read_bytes()[:100])
    assert launch(config)[0] == ""
    assert launch(config)[0] == "prepared"
    assert len(list(cache.glob("clean-*.arrow"))) == len(list(cache.glob("prepared-*.pickle"))) == 1
