"""Property: whatever malformed tables and settings the user brings, the engine either works or says why.

Random damage to the tiny demo tables (NaN / inf / text cells, missing columns, duplicate keys, empty labels,
tiny classes, few rows, a renamed key) and random settings go through Session.prepare, and a 1-epoch train
on some. Each example must succeed, with finite model inputs, or raise the engine's own VggtabError with a
message; any other exception is a bug.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import RunConfig
from engine.errors import VggtabError
from engine.load import wait_for_cache_writes
from engine.pipeline import Session

SIDES = st.sampled_from(["embeddings", "tabular"])
ANY = st.integers(0, 10**6)  # a row or column position, taken modulo the table's size
CELLS = st.sampled_from([np.nan, np.inf, -np.inf, "abc", "", "NaN", "1e999", " 2.5 ", " , "])
CLASS_NAMES = ("Bark", "Meow", "Purr", "Hiss")

MUTATIONS = st.one_of(
    st.tuples(st.just("set_cell"), SIDES, ANY, ANY, CELLS),
    st.tuples(st.just("fill_column"), SIDES, ANY, st.sampled_from([np.nan, 0.0, "x"])),
    st.tuples(st.just("drop_column"), SIDES, ANY),  # any column: key and labels too
    st.tuples(st.just("duplicate_rows"), SIDES, st.integers(1, 5)),
    st.tuples(st.just("blank_labels"), st.integers(1, 60)),
    st.tuples(st.just("relabel"), st.integers(1, 4), st.integers(0, 2**16)),
    st.tuples(st.just("keep_rows"), SIDES, st.integers(0, 40)),
    st.tuples(st.just("rename_key"), SIDES),
)

CONFIGS = st.fixed_dictionaries({
    "features": st.sampled_from(["both", "embeddings", "tabular", "emb,mel", "cqt_", "zzz_"]),
    "key": st.sampled_from([None, "fname", "file", "clip"]),
    "bad_rows": st.sampled_from(["drop", "impute"]),
    "label_mode": st.sampled_from(["single", "multi"]),
    "valid_pct": st.sampled_from([0.2, 0.05, 0.5]),
    "fold": st.sampled_from([None, 0, 1]),
    "n_folds": st.sampled_from([2, 3, 5]),
    "select_k": st.sampled_from([None, 1, 5, 500]),
    "select_method": st.sampled_from(["anova", "mutual_info"]),
    "pca": st.sampled_from([None, 1, 3, 100]),
    "bs": st.sampled_from([2, 8, 64]),
})


@pytest.fixture(scope="module")
def demo_tables(tiny_demo):
    text = {"fname": str, "file": str, "labels": str}
    return {"embeddings": pd.read_csv(tiny_demo.embeddings, dtype=text),
            "tabular": pd.read_csv(tiny_demo.tabular, dtype=text)}


def damage(tables: dict[str, pd.DataFrame], mutation: tuple) -> None:
    kind, *args = mutation
    if kind == "blank_labels":
        frame = tables["embeddings"]
        if "labels" in frame.columns and len(frame):
            frame.loc[frame.index[:args[0]], "labels"] = ""
        return
    if kind == "relabel":  # few classes, some of one clip, some clips with two labels
        n_classes, seed = args
        frame = tables["embeddings"]
        if "labels" in frame.columns:
            rng = np.random.default_rng(seed)
            names = rng.choice(CLASS_NAMES[:n_classes], size=(len(frame), 2), p=skewed(n_classes))
            two = rng.random(len(frame)) < 0.2
            frame["labels"] = [f"{a},{b}" if pair else a for (a, b), pair in zip(names, two)]
        return
    side, *args = args
    frame = tables[side]
    if kind == "set_cell" and len(frame) and len(frame.columns):
        row, column, value = args
        name = frame.columns[column % len(frame.columns)]
        frame[name] = frame[name].astype(object)
        frame.iloc[row % len(frame), frame.columns.get_loc(name)] = value
    elif kind == "fill_column" and len(frame.columns):
        column, value = args
        frame[frame.columns[column % len(frame.columns)]] = value
    elif kind == "drop_column" and len(frame.columns):
        tables[side] = frame.drop(columns=frame.columns[args[0] % len(frame.columns)])
    elif kind == "duplicate_rows":
        tables[side] = pd.concat([frame, frame.iloc[:args[0]]])
    elif kind == "keep_rows":
        tables[side] = frame.iloc[:args[0]]
    elif kind == "rename_key":
        tables[side] = frame.rename(columns={"fname": "clip", "file": "clip"})


def skewed(n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** 2
    return weights / weights.sum()


def files_of(tables: dict[str, pd.DataFrame], folder: Path) -> dict[str, str]:
    paths = {}
    for side, frame in tables.items():
        paths[side] = str(folder / f"{side}.csv")
        frame.to_csv(paths[side], index=False)
    return paths


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(MUTATIONS, max_size=4), settings_=CONFIGS,
       train=st.sampled_from([False, False, False, True]))
def test_damaged_tables_and_random_settings_run_or_raise_a_vggtab_error(demo_tables, mutations, settings_, train):
    tables = {side: frame.copy() for side, frame in demo_tables.items()}
    for mutation in mutations:
        damage(tables, mutation)
    with tempfile.TemporaryDirectory() as folder:
        session = Session(models_dir=Path(folder) / "models", results_dir=Path(folder) / "results",
                          cache_dir=Path(folder) / "cache")
        try:
            config = RunConfig(**files_of(tables, Path(folder)), epochs=1, lr=1e-3, **settings_)
            prepared = session.prepare(config)
            if train:
                session.train(config)
        except VggtabError as error:
            assert str(error).strip()
            return
        finally:
            wait_for_cache_writes()  # before the folder is removed under the background cache write
    assert np.isfinite(prepared.x_train).all() and np.isfinite(prepared.x_valid).all()
    assert len(prepared.x_train) == len(prepared.train_idx) > 0 and len(prepared.x_valid) == len(prepared.valid_idx) > 0
