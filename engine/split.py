"""Hold out validation rows, stratified by class like the notebook's `train_test_split(stratify=…)`."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from engine.errors import ConfigError, InputError
from engine.labels import classes_have
from engine.text import name_list



@dataclass(frozen=True)
class Split:
    train_idx: np.ndarray  # row positions, sorted
    valid_idx: np.ndarray
    notes: tuple[str, ...]


def holdout_split(targets, *, valid_pct: float = 0.2, seed: int = 42) -> Split:
    """One stratified holdout: the same rows as `train_test_split(rows, test_size=valid_pct,
    stratify=targets, random_state=seed)` whenever every class has 2+ clips.

    `targets` is a class label per row, or (multi-label) a list of labels per row, stratified on each
    row's rarest label. Classes with a single clip cannot be split: they stay in train and are named in
    `notes`.
    """
    if not 0 < valid_pct < 1:
        raise ConfigError(f"Setting valid_pct={valid_pct!r} is not valid.", hint="Use a fraction such as 0.2.")
    from sklearn.model_selection import train_test_split  # on use: ~1.5 s to import

    strata = stratification_labels(targets)
    rest, notes = _set_aside_small_classes(strata, min_clips=2)
    try:
        _, valid = train_test_split(rest, test_size=valid_pct, stratify=strata[rest], random_state=seed)
    except ValueError:
        # Fewer valid (or train) rows than classes: no split can hold every class on both sides.
        _, valid = train_test_split(rest, test_size=valid_pct, random_state=seed)
        notes.append(f"{len(rest):,} clips in {len(set(strata[rest]))} classes are too few to stratify a "
                     f"{valid_pct:.0%} split; it is a plain random split.")
    return _split(len(strata), valid, notes)


def kfold_split(targets, *, n_folds: int = 5, fold: int = 0, seed: int = 42) -> Split:
    """Fold `fold` of a shuffled stratified k-fold (targets as for `holdout_split`).

    Classes with fewer clips than folds cannot appear in every fold: they stay in train, named in `notes`.
    """
    if n_folds < 2:
        raise ConfigError(f"Setting n_folds={n_folds!r} is not valid.", hint="Use 2 or more folds.")
    if not 0 <= fold < n_folds:
        raise ConfigError(f"Setting fold={fold!r} is not valid.", hint=f"Use a fold from 0 to {n_folds - 1}.")
    from sklearn.model_selection import StratifiedKFold  # on use: ~1.5 s to import

    strata = stratification_labels(targets)
    rest, notes = _set_aside_small_classes(strata, min_clips=n_folds)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    _, valid = list(folds.split(rest, strata[rest]))[fold]
    return _split(len(strata), rest[valid], notes)


def nested_split(targets, *, test_pct: float, score_on: str, valid_pct: float = 0.2, seed: int = 42,
                 fold: int | None = None, n_folds: int = 5) -> Split:
    """A stratified test split set aside first (when `test_pct` > 0), then the holdout or fold `fold` of the
    remaining rows. score_on='test' trains on all remaining rows (train + valid) and holds out the test rows.

    The test rows depend on the labels, `test_pct` and `seed` only: every run of a sweep, whatever its valid split
    or fold, keeps the same test clips out of its train and valid rows.
    """
    def inner(rows_targets) -> Split:
        if fold is None:
            return holdout_split(rows_targets, valid_pct=valid_pct, seed=seed)
        return kfold_split(rows_targets, n_folds=n_folds, fold=fold, seed=seed)

    rows = list(targets)
    if not test_pct:
        return inner(rows)
    test = holdout_split(rows, valid_pct=test_pct, seed=seed)
    notes = tuple(f"test split: {note}" for note in test.notes)
    if score_on == "test":
        return Split(train_idx=test.train_idx, valid_idx=test.valid_idx, notes=notes)
    rest = test.train_idx
    chosen = inner([rows[i] for i in rest])
    return Split(train_idx=rest[chosen.train_idx], valid_idx=rest[chosen.valid_idx], notes=notes + chosen.notes)


def stratification_labels(targets) -> np.ndarray:
    """One label per row: the class itself, or a multi-label row's rarest label (ties: alphabetical)."""
    rows = list(targets)
    if not any(isinstance(row, (list, tuple, set, np.ndarray)) for row in rows):
        return np.asarray([str(row) for row in rows], dtype=object)
    frequency = Counter(label for row in rows for label in row)
    return np.asarray([min(row, key=lambda label: (frequency[label], label)) if len(row) else ""
                       for row in rows], dtype=object)


def split_id(valid_keys) -> str:
    """A short fingerprint of the validation rows: runs with the same one can be compared pairwise."""
    joined = "\n".join(sorted(str(key) for key in valid_keys))
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


def _set_aside_small_classes(strata: np.ndarray, *, min_clips: int) -> tuple[np.ndarray, list[str]]:
    sizes = Counter(strata)
    small = sorted(name for name, size in sizes.items() if size < min_clips)
    rest = np.flatnonzero(~np.isin(strata, small)) if small else np.arange(len(strata))
    notes = []
    if small:
        listed = name_list(f"{name or '(no label)'} ({sizes[name]})" for name in small)
        notes.append(f"{classes_have(len(small))} fewer than {min_clips} clips, too few to stratify; "
                     f"they are in train only: {listed}.")
    if len(rest) < min_clips:
        raise InputError(f"Only {len(rest)} clips belong to classes large enough to split.",
                         hint="Use a dataset with more clips per class.")
    return rest, notes


def _split(n_rows: int, valid, notes: list[str]) -> Split:
    """Every row not held out trains, including the small classes set aside."""
    valid_idx = np.sort(np.asarray(valid, dtype=np.int64))
    return Split(train_idx=np.setdiff1d(np.arange(n_rows), valid_idx), valid_idx=valid_idx, notes=tuple(notes))
