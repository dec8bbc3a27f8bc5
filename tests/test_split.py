from collections import Counter

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from engine.errors import ConfigError, InputError
from engine.split import holdout_split, kfold_split, split_id, stratification_labels


def classes(sizes: dict[str, int], seed: int = 0) -> np.ndarray:
    labels = np.array([name for name, size in sizes.items() for _ in range(size)], dtype=object)
    return np.random.default_rng(seed).permutation(labels)


def test_holdout_gives_the_notebooks_rows():
    targets = classes({"Bark": 30, "Purr": 20, "Hiss": 10, "Meow": 5})
    frame = pd.DataFrame({"labels": targets, "row": np.arange(len(targets))})
    _, notebook_valid = train_test_split(frame, test_size=0.2, stratify=frame.labels, random_state=42)
    split = holdout_split(targets)
    assert split.valid_idx.tolist() == sorted(notebook_valid["row"])
    assert split.notes == ()


def test_holdout_partitions_rows_and_stratifies():
    targets = classes({"Bark": 50, "Purr": 25, "Hiss": 10})
    split = holdout_split(targets, valid_pct=0.2, seed=7)
    assert len(split.valid_idx) == 17
    assert sorted(np.concatenate([split.train_idx, split.valid_idx])) == list(range(85))
    assert Counter(targets[split.valid_idx]) == {"Bark": 10, "Purr": 5, "Hiss": 2}
    assert holdout_split(targets, seed=8).valid_idx.tolist() != split.valid_idx.tolist()
    assert holdout_split(targets, seed=7).valid_idx.tolist() == split.valid_idx.tolist()


def test_single_clip_classes_go_to_train_and_are_named():
    targets = classes({"Bark": 20, "Purr": 10, "Hiss": 1, "Growl": 1})
    split = holdout_split(targets)
    singles = np.flatnonzero(np.isin(targets, ["Hiss", "Growl"]))
    assert set(singles) <= set(split.train_idx)
    assert len(split.train_idx) + len(split.valid_idx) == 32
    assert split.notes and "Growl (1), Hiss (1)" in split.notes[0]


def test_too_few_rows_for_every_class_falls_back_to_a_random_split():
    targets = classes({name: 2 for name in "ABCDEFGHIJ"})  # 4 valid rows cannot hold 10 classes
    split = holdout_split(targets)
    assert len(split.valid_idx) == 4 and len(split.train_idx) == 16
    assert "plain random split" in split.notes[0]


def test_nothing_large_enough_to_split():
    with pytest.raises(InputError, match="Only 0 clips"):
        holdout_split(np.array(["A", "B", "C"]))


def test_multilabel_rows_stratify_on_their_rarest_label():
    targets = [["Bark"]] * 6 + [["Bark", "Hiss"]] * 3 + [["Purr", "Bark"]] * 4 + [["Hiss"]]
    assert stratification_labels(targets).tolist() == ["Bark"] * 6 + ["Hiss"] * 3 + ["Purr"] * 4 + ["Hiss"]
    split = holdout_split(targets, valid_pct=0.25)
    assert sorted(np.concatenate([split.train_idx, split.valid_idx])) == list(range(14))
    valid_strata = Counter(stratification_labels(targets)[split.valid_idx])
    assert valid_strata == {"Bark": 2, "Purr": 1, "Hiss": 1}


def test_kfold_folds_cover_every_row_once_and_stratify():
    targets = classes({"Bark": 25, "Purr": 15, "Hiss": 10})
    folds = [kfold_split(targets, n_folds=5, fold=k) for k in range(5)]
    all_valid = np.concatenate([f.valid_idx for f in folds])
    assert sorted(all_valid) == list(range(50))
    for f in folds:
        assert Counter(targets[f.valid_idx]) == {"Bark": 5, "Purr": 3, "Hiss": 2}
        assert not set(f.train_idx) & set(f.valid_idx)


def test_kfold_classes_smaller_than_the_fold_count_stay_in_train():
    targets = classes({"Bark": 20, "Purr": 10, "Hiss": 3})
    hiss = set(np.flatnonzero(targets == "Hiss"))
    for k in range(5):
        split = kfold_split(targets, n_folds=5, fold=k)
        assert hiss <= set(split.train_idx)
    assert "Hiss (3)" in split.notes[0] and "fewer than 5 clips" in split.notes[0]


def test_bad_settings():
    targets = classes({"A": 10, "B": 10})
    with pytest.raises(ConfigError, match="fold=5"):
        kfold_split(targets, n_folds=5, fold=5)
    with pytest.raises(ConfigError, match="n_folds=1"):
        kfold_split(targets, n_folds=1)
    with pytest.raises(ConfigError, match="valid_pct=1.5"):
        holdout_split(targets, valid_pct=1.5)


def test_split_id_is_stable_and_order_free():
    assert split_id(["b.wav", "a.wav"]) == split_id(np.array(["a.wav", "b.wav"]))
    assert split_id(["a.wav"]) != split_id(["a.wav", "b.wav"])
    assert len(split_id(["a.wav"])) == 12
