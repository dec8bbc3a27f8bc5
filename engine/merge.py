"""Join the embeddings and tabular tables on the clip's file name (inner join, like the notebook)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd

from engine.errors import InputError
from engine.text import name_list

KEY_CANDIDATES = ("fname", "file")
MERGED_KEY = "fname"
LABELS = "labels"
EXAMPLES = 3  # keys shown from each side when they don't match


@dataclass(frozen=True)
class Matching:
    """How the two files' keys matched: plain data, kept in the prepared-data cache (engine.clean)."""

    key: str  # the key column as named in the merged frame: always "fname"
    source_keys: tuple[str, str]  # the key column's name in each file
    rows_embeddings: int
    rows_tabular: int
    matched: int
    unmatched_embeddings: int
    unmatched_tabular: int
    unmatched_examples: tuple[str, ...]


@dataclass(frozen=True)
class Merged(Matching):
    frame: pd.DataFrame  # fname, labels, then the other columns (embeddings' first, then tabular's)
    duplicate_keys: tuple[str, ...]
    warnings: tuple[str, ...]

    def matching(self) -> Matching:
        return Matching(**{f.name: getattr(self, f.name) for f in fields(Matching)})


def merge_tables(embeddings: pd.DataFrame, tabular: pd.DataFrame, *, embeddings_path: str, tabular_path: str,
                 key: str | None = None, labels_required: bool = True, normalise_keys: bool = False) -> Merged:
    """Inner-join on the key column; duplicate keys keep their first row, unmatched rows are counted.

    Clips to predict need no labels (`labels_required=False`): without a labels column, `labels` is empty.
    `normalise_keys` matches keys ignoring case, folders and extension case ("Audio/A.WAV" ~ "a.wav").
    """
    # A named key need only be in one file: the other may keep its fname/file (the notebook's files differ).
    named_somewhere = key is not None and (key in embeddings.columns or key in tabular.columns)
    sides = [_Side(embeddings, embeddings_path, key, named_somewhere),
             _Side(tabular, tabular_path, key, named_somewhere)]
    emb, tab = sides
    warnings = [warning for side in sides for warning in side.warnings]

    if normalise_keys:
        positions = _match_normalised(emb, tab)
    else:
        positions = pd.Index(tab.keys).get_indexer(emb.keys)
        if not (positions >= 0).any():
            positions = _match_on_stems(emb, tab, warnings)
        else:
            warnings.extend(_offer_normalising(emb, tab, positions))
    matched_emb = np.flatnonzero(positions >= 0)
    matched_tab = positions[matched_emb]
    unmatched_emb = np.setdiff1d(np.arange(len(emb.keys)), matched_emb)
    unmatched_tab = np.setdiff1d(np.arange(len(tab.keys)), matched_tab)
    for side, unmatched, other in ((emb, unmatched_emb, tab), (tab, unmatched_tab, emb)):
        if len(unmatched):
            warnings.append(f"{len(unmatched):,} clips of {side.path} have no row in {other.path} "
                            f"(e.g. {', '.join(side.keys[unmatched[:EXAMPLES]])}); they are left out.")

    labels = _labels(emb, tab, matched_emb, matched_tab, warnings, labels_required)
    emb_columns, tab_columns = emb.other_columns(), tab.other_columns()
    shared = [c for c in tab_columns if c in emb_columns]
    if shared:
        warnings.append(f"Columns {', '.join(shared[:5])} are in both files; kept those of {emb.path}.")
    frame = pd.concat([
        pd.DataFrame({MERGED_KEY: emb.keys[matched_emb], LABELS: labels}),
        emb.frame[emb_columns].iloc[matched_emb].reset_index(drop=True),
        tab.frame[[c for c in tab_columns if c not in shared]].iloc[matched_tab].reset_index(drop=True),
    ], axis=1)
    return Merged(
        frame=frame, key=MERGED_KEY, rows_embeddings=len(embeddings), rows_tabular=len(tabular),
        matched=len(matched_emb), unmatched_embeddings=len(unmatched_emb), unmatched_tabular=len(unmatched_tab),
        unmatched_examples=tuple(emb.keys[unmatched_emb[:EXAMPLES]]) + tuple(tab.keys[unmatched_tab[:EXAMPLES]]),
        duplicate_keys=tuple(sorted(set(emb.duplicates + tab.duplicates))), warnings=tuple(warnings),
        source_keys=(emb.key, tab.key))


class _Side:
    """One input table with its key column found, blank keys dropped and duplicate keys reduced to one row."""

    def __init__(self, frame: pd.DataFrame, path: str, key: str | None, named_somewhere: bool = False):
        self.path = path
        self.key = _find_key(frame, path, key, named_somewhere)
        self.warnings: list[str] = []
        keys = frame[self.key].astype("string").str.strip()
        blank = keys.isna() | (keys == "")
        if blank.any():
            self.warnings.append(f"{int(blank.sum()):,} rows of {path} have no {self.key}; they are left out.")
        repeated = keys.duplicated() & ~blank
        self.duplicates = tuple(sorted(set(keys[repeated])))
        if self.duplicates:
            self.warnings.append(
                f"{len(self.duplicates):,} {self.key} values appear more than once in {path} "
                f"(e.g. {', '.join(self.duplicates[:EXAMPLES])}); kept the first row of each.")
        kept = ~(blank | repeated)
        self.frame = frame if kept.all() else frame[kept.to_numpy()]  # a filtered copy only when rows go
        self.keys = keys[kept].to_numpy(dtype=object)

    def other_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in (self.key, MERGED_KEY, LABELS)]


def _find_key(frame: pd.DataFrame, path: str, key: str | None, named_somewhere: bool = False) -> str:
    """The named key column; without one, or when only the other file has it, fname or file."""
    if key in frame.columns:
        return key
    if key is None or named_somewhere:
        for candidate in KEY_CANDIDATES:
            if candidate in frame.columns:
                return candidate
    if key is None:
        raise InputError(f"{path} has no key column (fname or file). Columns: {name_list(frame.columns, 8)}.",
                         hint="Set `key` to the column that holds the clip file names.")
    others = [c for c in KEY_CANDIDATES if c != key]
    also = f" (nor {' or '.join(others)})" if named_somewhere else ""
    raise InputError(f"{path} has no column {key!r}{also}. Columns: {name_list(frame.columns, 8)}.",
                     hint="Give `key` the name of the column that holds the clip file names; the other file "
                          "may name its key fname or file.")


def _match_on_stems(emb: _Side, tab: _Side, warnings: list[str]) -> np.ndarray:
    """No key matched as written: retry on bare file names in lower case ("audio/A.wav" and "a" become "a")."""
    emb_stems, tab_stems = _stems(emb.keys), _stems(tab.keys)
    positions = np.full(len(emb.keys), -1)
    tab_index = pd.Index(tab_stems)
    if tab_index.is_unique and pd.Index(emb_stems).is_unique:
        positions = tab_index.get_indexer(emb_stems)
    if not (positions >= 0).any():
        raise _no_key_matches(emb, tab)
    first = int(np.flatnonzero(positions >= 0)[0])
    warnings.append(f"No keys matched as written; matched {int((positions >= 0).sum()):,} clips on file names "
                    f"without folders, extensions or case (e.g. {emb.keys[first]} ~ {tab.keys[positions[first]]}).")
    return positions


def _no_key_matches(emb: _Side, tab: _Side, how: str = "") -> InputError:
    return InputError(f"No {emb.key} in {emb.path} matches a {tab.key} in {tab.path}{how}: "
                      f"{emb.path} has e.g. {', '.join(emb.keys[:EXAMPLES])}; "
                      f"{tab.path} has e.g. {', '.join(tab.keys[:EXAMPLES])}.",
                      hint="Check that both files describe the same clips, or set `key` to the column that holds "
                           "the clip file names.")


def _stems(keys: np.ndarray) -> list[str]:
    return [PureWindowsPath(PurePosixPath(k).name).stem.casefold() for k in keys]


def normalised_keys(keys) -> np.ndarray:
    """'Audio/Dog_1.WAV' and 'dog_1.wav' → 'dog_1.wav': the file name without folders, in lower case."""
    return np.array([PureWindowsPath(PurePosixPath(k).name).name.casefold() for k in keys], dtype=object)


def _match_normalised(emb: _Side, tab: _Side) -> np.ndarray:
    """key_normalise=on: match on normalised keys, which must stay unique on each side."""
    normalised = []
    for side in (emb, tab):
        keys = pd.Index(normalised_keys(side.keys))
        if not keys.is_unique:
            clash = keys[keys.duplicated()][0]
            examples = ", ".join(side.keys[keys == clash][:EXAMPLES])
            raise InputError(f"With key_normalise=on, {keys.duplicated().sum():,} {side.key} values of {side.path} "
                             f"become the same as another (e.g. {examples} are all {clash!r}).",
                             hint="Rename those clips so they differ by more than case or folder, or set "
                                  "key_normalise=off.")
        normalised.append(keys)
    positions = normalised[1].get_indexer(normalised[0])
    if not (positions >= 0).any():
        raise _no_key_matches(emb, tab, ", even ignoring case and folders")
    return positions


def _offer_normalising(emb: _Side, tab: _Side, positions: np.ndarray) -> list[str]:
    """Some keys matched as written and some did not: say how many of the others would match normalised."""
    unmatched_emb = np.flatnonzero(positions < 0)
    unmatched_tab = np.setdiff1d(np.arange(len(tab.keys)), positions[positions >= 0])
    if not len(unmatched_emb) or not len(unmatched_tab):
        return []
    spare = pd.Series(unmatched_tab, index=normalised_keys(tab.keys[unmatched_tab]))
    spare = spare[~spare.index.duplicated(keep=False)]
    partner = spare.reindex(normalised_keys(emb.keys[unmatched_emb])).to_numpy()
    rescued = ~np.isnan(partner)
    if not rescued.any():
        return []
    pairs = [f"{emb.keys[i]} ~ {tab.keys[int(j)]}"
             for i, j in zip(unmatched_emb[rescued][:EXAMPLES], partner[rescued][:EXAMPLES])]
    found = (f"{int(rescued.sum()):,} of the {len(unmatched_emb):,} clips of {emb.path} without a row in {tab.path} "
             f"match one when case, folders and extension case are ignored (e.g. {'; '.join(pairs)})")
    matched = int((positions >= 0).sum())
    if rescued.sum() > matched:  # most clips would be lost: training on the few left is not what the user wants
        raise InputError(f"Only {matched:,} clips matched as written, but {found}.",
                         hint="Set key_normalise=on to match them, or fix the keys in one file.")
    return [f"{found}; set key_normalise=on to match them."]


def _labels(emb: _Side, tab: _Side, matched_emb: np.ndarray, matched_tab: np.ndarray,
            warnings: list[str], required: bool) -> np.ndarray:
    """Labels from whichever file has them; when both do, the embeddings file wins and disagreements are told."""
    has = [LABELS in side.frame.columns for side in (emb, tab)]
    if not any(has) and not required:
        return np.full(len(matched_emb), None, dtype=object)
    if not any(has):
        raise InputError(f"Neither {emb.path} nor {tab.path} has a {LABELS!r} column.",
                         hint="Add the clips' labels (comma-separated, e.g. \"Bark,Growl\") to one of the files.")
    if not has[0]:
        return tab.frame[LABELS].to_numpy(dtype=object)[matched_tab]
    labels = emb.frame[LABELS].to_numpy(dtype=object)[matched_emb]
    if has[1]:
        other = tab.frame[LABELS].to_numpy(dtype=object)[matched_tab]
        differ = _as_text(labels) != _as_text(other)
        if differ.any():
            first = int(np.flatnonzero(differ)[0])
            warnings.append(f"Labels differ for {int(differ.sum()):,} clips between the files "
                            f"(e.g. {emb.keys[matched_emb[first]]}: {labels[first]!r} vs {other[first]!r}); "
                            f"used those of {emb.path}.")
    return labels


def _as_text(values: np.ndarray) -> np.ndarray:
    return pd.Series(values, dtype="string").fillna("").str.strip().to_numpy(dtype=object)
