"""The built-in demo data: the user's file format, their data's quirks, determinism and learnable signal."""

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from engine import demo
from engine.demo import CLASS_NAMES, MARKER, generate_demo
from engine.errors import ConfigError, StorageError
from tests.conftest import SMALL_BINS, SMALL_DEMO, TINY_DEMO

TABULAR_PREFIXES = ("stft_", "mel_", "cqt_")


def tabular_names(bins: dict[str, int]) -> list[str]:
    return [f"{group}_{stat}_{b}" for group in ("stft", "mel", "cqt") for stat in ("mean", "std")
            for b in range(bins[group])]


def header(path) -> list[str]:
    with open(path) as handle:
        return handle.readline().rstrip("\n").split(",")


def read(files):
    return pd.read_csv(files.embeddings), pd.read_csv(files.tabular)


def single_label_matched(embeddings: pd.DataFrame, tabular: pd.DataFrame) -> pd.DataFrame:
    merged = embeddings.merge(tabular, left_on="fname", right_on="file")
    return merged[~merged["labels"].str.contains(",")]


@pytest.fixture(scope="module")
def default_rows(tmp_path_factory):
    """The default row counts and classes, with few bins to stay fast."""
    return generate_demo(tmp_path_factory.mktemp("default_rows"), bins=SMALL_BINS, n_test=5)


def test_columns_are_the_users_format(small_demo):
    emb_names = [f"emb_{j}" for j in range(128)]
    tab_names = tabular_names(SMALL_BINS)
    assert header(small_demo.embeddings) == ["fname", "labels"] + emb_names
    assert header(small_demo.tabular) == ["file"] + tab_names
    assert header(small_demo.test_embeddings) == ["fname"] + emb_names
    assert header(small_demo.test_tabular) == ["file"] + tab_names


def test_real_bins_give_the_users_2474_tabular_columns(tmp_path):
    files = generate_demo(tmp_path, n_tabular=40, n_embeddings=30, n_classes=3, n_test=2)
    columns = header(files.tabular)
    assert len(columns) == 1 + 2474
    assert columns[1:] == tabular_names({"stft": 1025, "mel": 128, "cqt": 84})
    assert pd.read_csv(files.tabular).shape == (40, 2475)


def test_rows_keys_and_unmatched_on_both_sides(small_demo):
    embeddings, tabular = read(small_demo)
    assert len(embeddings) == SMALL_DEMO["n_embeddings"] and len(tabular) == SMALL_DEMO["n_tabular"]
    emb_keys, tab_keys = set(embeddings["fname"]), set(tabular["file"])
    assert len(emb_keys) == len(embeddings) and len(tab_keys) == len(tabular)
    assert all(re.fullmatch(r"[0-9a-f]{8}\.wav", key) for key in emb_keys | tab_keys)
    assert 1 <= len(emb_keys - tab_keys) <= 10
    assert len(tab_keys - emb_keys) == len(tabular) - len(emb_keys & tab_keys) > 100
    # Tabular rows come in extraction order: a positional join would pair the wrong clips.
    assert list(tabular["file"]) != sorted(tabular["file"])


def test_labels_are_class_names_with_about_15_percent_multi_label(small_demo):
    embeddings, _ = read(small_demo)
    label_sets = embeddings["labels"].str.split(",")
    counts = label_sets.str.len()
    assert 0.12 < (counts > 1).mean() < 0.18
    assert counts.min() == 1 and counts.max() <= 6
    assert all(len(set(labels)) == len(labels) for labels in label_sets)
    names = {name for labels in label_sets for name in labels}
    assert names <= set(CLASS_NAMES) and len(names) == SMALL_DEMO["n_classes"]


def test_text_cells_are_quoted_only_in_the_file_whose_labels_hold_commas(small_demo):
    """pyarrow's CSV writer quotes every text cell of the embeddings file (a comma-joined label set must be
    quoted) and none elsewhere; numbers and the header are never quoted."""
    lines = small_demo.embeddings.read_text().splitlines()
    assert '"' not in lines[0]
    rows = lines[1:]
    assert all(re.fullmatch(r'"[0-9a-f]{8}\.wav","[^",]+(,[^",]+)*"(,\d+\.0){128}', line) for line in rows)
    assert any(re.search(r'"[^",]+(,[^",]+)+"', line) for line in rows)  # multi-label cells are there
    for path in (small_demo.tabular, small_demo.test_tabular, small_demo.test_embeddings):
        assert '"' not in path.read_text()


def test_exactly_one_matched_single_label_row_holds_nan(small_demo):
    embeddings, tabular = read(small_demo)
    nan_rows = tabular[tabular.isna().any(axis=1)]
    assert len(nan_rows) == 1
    assert 1 <= nan_rows.isna().sum(axis=1).item() <= 5
    labels = embeddings.set_index("fname").loc[nan_rows["file"].item(), "labels"]
    assert "," not in labels
    assert not embeddings.isna().any().any()
    assert not pd.read_csv(small_demo.test_tabular).isna().any().any()


def test_values_look_like_vggish_and_spectral_statistics(small_demo):
    embeddings, tabular = read(small_demo)
    emb = embeddings.filter(like="emb_").to_numpy()
    assert emb.min() >= 0 and emb.max() <= 255 and np.array_equal(emb, np.round(emb))
    assert emb.std(axis=0).min() > 5
    tab = tabular.drop(columns="file")
    assert (tab.min() >= 0).all()
    assert (tab.std() > 0).all()
    assert tab.filter(like="cqt_mean").median().between(20, 100).all()  # dB above a floor
    assert tab["stft_mean_0"].median() > 10 * tab["stft_mean_11"].median()  # energy falls with frequency


def test_default_counts_match_the_users_set(default_rows):
    embeddings, tabular = read(default_rows)
    assert (len(embeddings), len(tabular)) == (3524, 4970)
    sizes = single_label_matched(embeddings, tabular)["labels"].value_counts()
    assert len(sizes) == 74
    assert sizes.min() == 3 and 65 <= sizes.max() <= 80
    assert 2900 <= sizes.sum() <= 3050
    counts = embeddings["labels"].str.count(",") + 1
    assert set(counts) == {1, 2, 3, 4, 5, 6}
    assert 0.13 < (counts > 1).mean() < 0.17


def test_test_pair_is_unlabeled_other_clips(small_demo):
    embeddings, tabular = read(small_demo)
    test_embeddings = pd.read_csv(small_demo.test_embeddings)
    test_tabular = pd.read_csv(small_demo.test_tabular)
    assert "labels" not in test_embeddings and "labels" not in test_tabular
    assert len(test_embeddings) == len(test_tabular) == SMALL_DEMO["n_test"]
    assert set(test_embeddings["fname"]) == set(test_tabular["file"])
    assert not set(test_embeddings["fname"]) & (set(embeddings["fname"]) | set(tabular["file"]))


def test_same_seed_writes_the_same_bytes(tmp_path, tiny_demo):
    again = generate_demo(tmp_path / "again", **TINY_DEMO)
    other = generate_demo(tmp_path / "other", **TINY_DEMO, seed=1)
    for name in ("embeddings", "tabular", "test_embeddings", "test_tabular"):
        assert getattr(again, name).read_bytes() == getattr(tiny_demo, name).read_bytes()
        assert getattr(other, name).read_bytes() != getattr(tiny_demo, name).read_bytes()


def test_a_demo_written_in_many_chunks_keeps_every_row_and_the_one_nan_row(tmp_path, monkeypatch):
    """Any size is written CHUNK_ROWS rows at a time; here 11-12 chunks per file instead of one."""
    monkeypatch.setattr(demo, "CHUNK_ROWS", 64)
    files = generate_demo(tmp_path, **SMALL_DEMO)
    embeddings, tabular = read(files)
    assert (len(embeddings), len(tabular)) == (SMALL_DEMO["n_embeddings"], SMALL_DEMO["n_tabular"])
    assert embeddings["fname"].is_unique and tabular["file"].is_unique
    assert list(embeddings["fname"]) == sorted(embeddings["fname"])
    assert tabular.isna().any(axis=1).sum() == 1
    assert header(files.tabular) == ["file"] + tabular_names(SMALL_BINS)


def test_clip_counts_scale_the_default_demo():
    assert demo.scaled_counts(4970) == {"n_tabular": 4970, "n_embeddings": 3524}
    assert demo.scaled_counts(50_000) == {"n_tabular": 50_000, "n_embeddings": 35_453}
    with pytest.raises(ConfigError, match="clips=399"):  # vggtab demo --clips 400 works (below)
        demo.scaled_counts(demo.MIN_CLIPS - 1)


def test_writes_leave_no_temp_files_and_replace_the_demos_own_old_ones(tmp_path):
    generate_demo(tmp_path, **TINY_DEMO, seed=1)
    (tmp_path / "tabular.csv").write_text("stale")
    files = generate_demo(tmp_path, **TINY_DEMO)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [MARKER] + [p.name for p in (files.embeddings, files.tabular, files.test_embeddings, files.test_tabular)])
    assert header(files.tabular)[0] == "file"


def test_a_file_the_demo_did_not_write_is_never_replaced(tmp_path):
    (tmp_path / "test_tabular.csv").write_text("the user's own")
    with pytest.raises(StorageError, match="test_tabular.csv already exists and was not written by the demo"):
        generate_demo(tmp_path, **TINY_DEMO)
    assert (tmp_path / "test_tabular.csv").read_text() == "the user's own"


def test_unwritable_folder_is_a_storage_error_naming_it(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    with pytest.raises(StorageError, match="taken"):
        generate_demo(blocker / "demo", **TINY_DEMO)


@pytest.mark.parametrize("change, named", [
    (dict(bins={"stft": 12, "mel": 8}), "bins"),
    (dict(n_classes=75), "n_classes=75"),
    (dict(n_embeddings=20, n_classes=6), "n_embeddings=20"),
    (dict(n_tabular=50), "n_tabular=50"),
    (dict(n_test=0), "n_test=0"),
])
def test_impossible_sizes_are_config_errors_naming_the_value(tmp_path, change, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        generate_demo(tmp_path, **{**TINY_DEMO, **change})
    assert not any(tmp_path.iterdir())


def linear_model(train: pd.DataFrame, columns: list[str]):
    """Standardized features and a shrunk linear discriminant: a fast, seed-free stand-in for the MLP."""
    scaler = StandardScaler().fit(train[columns])
    model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(scaler.transform(train[columns]),
                                                                             train["labels"])
    return lambda rows: model.predict(scaler.transform(rows[columns]))


def holdout_accuracy(data: pd.DataFrame, prefixes: tuple[str, ...]) -> float:
    """Accuracy on the notebook's split: 80/20 stratified, seed 42."""
    train, valid = train_test_split(data, test_size=0.2, stratify=data["labels"], random_state=42)
    predict = linear_model(train, [c for c in data if c.startswith(prefixes)])
    return float((predict(valid) == valid["labels"]).mean())


def test_small_demo_is_learnable_well_above_random(small_demo):
    data = single_label_matched(*read(small_demo)).dropna()
    assert holdout_accuracy(data, ("emb_",)) > 0.8  # random is 1/8
    assert holdout_accuracy(data, TABULAR_PREFIXES) > 0.4


def test_blocks_are_complementary(tmp_path):
    # ~680 valid clips: enough that the ~2-point gain of both blocks stands above the split's noise (seeds 0-2).
    files = generate_demo(tmp_path, n_tabular=4400, n_embeddings=4000, n_classes=40, n_test=1, bins=SMALL_BINS)
    data = single_label_matched(*read(files)).dropna()
    embeddings_only = holdout_accuracy(data, ("emb_",))
    tabular_only = holdout_accuracy(data, TABULAR_PREFIXES)
    both = holdout_accuracy(data, ("emb_",) + TABULAR_PREFIXES)
    assert both > embeddings_only + 0.015
    assert embeddings_only > tabular_only + 0.2


def test_multi_label_clips_carry_their_classes_signal(small_demo):
    embeddings, tabular = read(small_demo)
    merged = embeddings.merge(tabular, left_on="fname", right_on="file").dropna()
    multi = merged["labels"].str.contains(",")
    predict = linear_model(merged[~multi], [c for c in merged if c.startswith("emb_")])
    predicted = predict(merged[multi])
    hits = [guess in labels.split(",") for guess, labels in zip(predicted, merged.loc[multi, "labels"])]
    assert np.mean(hits) > 0.7  # a random guess hits about 2.4 / 8 of the time


def test_vggtab_demo_writes_the_number_of_clips_asked_for(tmp_path, run_cli):
    outcome = run_cli("demo", "--out", str(tmp_path), "--clips", "400")
    assert outcome.code == 0, outcome.err
    embeddings, tabular = pd.read_csv(tmp_path / "embeddings.csv"), pd.read_csv(tmp_path / "tabular.csv")
    assert tabular.shape == (400, 2475) and len(embeddings) == demo.scaled_counts(400)["n_embeddings"] == 284
