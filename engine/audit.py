"""Check the feature columns before training: the notebook's NaN losses came from one merged row with NaN.

Every row holding NaN, ±inf or a value beyond float32's range (the models' input type, where it would become
±inf) is named with its columns; with policy 'drop' it leaves the table, with 'impute' it stays (±inf and
out-of-range values turned into NaN) for the train-median imputation of engine.features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.errors import InputError
from engine.text import name_list

ABSURD_MAGNITUDE = 1e6
FLOAT32_MAX = float(np.finfo(np.float32).max)  # ~3.4e38: larger values overflow to ±inf as model inputs
COLUMNS_NAMED = 4  # columns listed per bad row before "+N more"
DROPPED_SHARE_WARNING = 0.05
# ~80 MB of float64 per pass over 2,474 columns, whatever the table's length.
ROWS_PER_CHUNK = 4096
# Spellings of "no value" that pandas does not read as missing when a column was parsed as text.
MISSING_TOKENS = frozenset({"", "nan", "-nan", "na", "n/a", "null", "none"})


@dataclass(frozen=True)
class Audit:
    frame: pd.DataFrame  # without bad rows ('drop') or with them, ±inf as NaN ('impute'); no all-NaN columns
    bad_rows: tuple[tuple[str, str], ...]  # (key, "NaN in stft_mean_3, mel_std_7; inf in cqt_std_0; …")
    dropped_columns: tuple[str, ...]  # entirely NaN, so removed
    constant_columns: tuple[str, ...]
    absurd_columns: tuple[str, ...]  # some |value| > ABSURD_MAGNITUDE
    warnings: tuple[str, ...]
    feature_columns: tuple[str, ...] = ()  # the given feature columns still in `frame`


def audit_features(frame: pd.DataFrame, feature_columns, *, key: str = "fname", policy: str = "drop") -> Audit:
    columns = list(feature_columns)
    if frame.empty:
        raise InputError("The merged table has no rows to audit.", hint="Check that the two files share clips.")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"The merged table lacks feature columns {', '.join(missing[:5])}.",
                         hint="Pick a feature set whose columns are in both files.")
    keys = (frame[key] if key in frame.columns else pd.Series(frame.index)).astype(str).to_numpy()
    converted = _as_numbers(frame, columns, key, keys)
    if converted:  # assign copies the whole frame (~100 MB on the user's data): only when needed
        frame = frame.assign(**converted)

    positions = frame.columns.get_indexer(columns)
    empty = ~_has_values(frame, positions)
    dropped = tuple(np.asarray(columns, dtype=object)[empty])
    columns = [c for c, gone in zip(columns, empty) if not gone]
    positions = positions[~empty]
    warnings = [f"Columns {name_list(dropped)} hold no values at all; they were dropped."] if dropped else []

    scan = _scan(frame, positions, policy)
    bad, bad_values = scan.bad, scan.bad_values  # few rows: NaN, inf and overflow are told apart only here
    bad_at = np.flatnonzero(bad)
    bad_rows = tuple((keys[i], _describe(row, columns)) for i, row in zip(bad_at, bad_values))
    if policy == "drop" and bad.all():
        worst = columns[int(scan.nonfinite_per_column.argmax())]
        raise InputError(f"Every row has NaN, inf or a value beyond float32 in some feature (most often in {worst}).",
                         hint="Use bad_rows=impute to fill them with train medians, or fix the file.")

    names = np.asarray(columns, dtype=object)
    constant = tuple(names[scan.low == scan.high])
    absurd = tuple(names[scan.largest > ABSURD_MAGNITUDE])
    if constant:
        warnings.append(f"Columns {name_list(constant)} have one value in every row; they carry no information.")
    if absurd:
        warnings.append(f"Columns {name_list(absurd)} hold values beyond ±{ABSURD_MAGNITUDE:g}; check their units.")
    if policy == "drop" and bad.mean() > DROPPED_SHARE_WARNING:
        warnings.append(f"Dropped {int(bad.sum()):,} of {len(bad):,} rows for NaN/inf/out-of-range features; "
                        f"bad_rows=impute would keep them.")

    if dropped:
        frame = frame.drop(columns=list(dropped))
    if policy == "drop" and bad.any():
        frame = frame[~bad].reset_index(drop=True)
    elif out_of_range := [c for c, has in zip(columns, (np.abs(bad_values) > FLOAT32_MAX).any(axis=0)) if has]:
        frame = frame.assign(**{c: frame[c].where(frame[c].abs() <= FLOAT32_MAX) for c in out_of_range})
    return Audit(frame=frame, bad_rows=bad_rows, dropped_columns=dropped, constant_columns=constant,
                 absurd_columns=absurd, warnings=tuple(warnings), feature_columns=tuple(columns))


def _as_numbers(frame: pd.DataFrame, columns: list[str], key: str, keys: np.ndarray) -> dict[str, pd.Series]:
    """Columns parsed as text ("1.5" in a CSV column that also holds "abc") become numbers, or an InputError."""
    converted = {}
    dtypes = frame.dtypes  # one lookup; frame[column] per column took 0.2 s on 2,602 columns
    for column in columns:
        if pd.api.types.is_numeric_dtype(dtypes[column]):
            continue
        text = frame[column]
        numbers = pd.to_numeric(text, errors="coerce")
        blank = text.isna() | text.astype(str).str.strip().str.lower().isin(MISSING_TOKENS)
        wrong = np.flatnonzero((numbers.isna() & ~blank).to_numpy())
        if len(wrong):
            first = wrong[0]
            more = f" ({len(wrong) - 1:,} more rows too)" if len(wrong) > 1 else ""
            raise InputError(f"Feature column {column} holds text, not numbers: {key} {keys[first]} has "
                             f"{text.iloc[first]!r}{more}.",
                             hint="Fix or blank that value in the file, or leave the column out of the feature set.")
        converted[column] = numbers.astype(np.float64)
    return converted


def _describe(row: np.ndarray, columns: list[str]) -> str:
    """'NaN in a, b; inf in c; beyond float32 (±3.4e38) in d = 1e+39': out-of-range values are shown, so the user
    can find them in the file."""
    inf = np.isinf(row)
    parts = []
    for what, mask, show_value in (("NaN", np.isnan(row), False), ("inf", inf, False),
                                   ("beyond float32 (±3.4e38)", ~inf & (np.abs(row) > FLOAT32_MAX), True)):
        names = [f"{columns[i]} = {row[i]:g}" if show_value else columns[i] for i in np.flatnonzero(mask)]
        if names:
            more = f" … (+{len(names) - COLUMNS_NAMED:,} more)" if len(names) > COLUMNS_NAMED else ""
            parts.append(f"{what} in {', '.join(names[:COLUMNS_NAMED])}{more}")
    return "; ".join(parts)


def _row_chunks(frame: pd.DataFrame, positions: np.ndarray):
    """The columns at `positions` as float64, ROWS_PER_CHUNK rows at a time: never a copy of the whole table."""
    for start in range(0, len(frame), ROWS_PER_CHUNK):
        yield start, frame.iloc[start:start + ROWS_PER_CHUNK, positions].to_numpy(dtype=np.float64)


def _has_values(frame: pd.DataFrame, positions: np.ndarray) -> np.ndarray:
    """Per column: does any row hold a value (not NaN)?"""
    seen = np.zeros(len(positions), dtype=bool)
    for _, values in _row_chunks(frame, positions):
        seen |= ~np.isnan(values).all(axis=0)
    return seen


@dataclass
class _Scan:
    """One pass over the feature values: the bad rows and, over the usable values, each column's range."""

    bad: np.ndarray  # per row: NaN, ±inf or beyond float32 in some column
    bad_values: np.ndarray  # those rows' values
    nonfinite_per_column: np.ndarray
    low: np.ndarray  # fmin/fmax skip NaN: a column's range over the values the run will use
    high: np.ndarray
    largest: np.ndarray  # largest |value|


def _scan(frame: pd.DataFrame, positions: np.ndarray, policy: str) -> _Scan:
    """'drop' judges the columns on the good rows; 'impute' on every row, its bad values left out."""
    n_columns = len(positions)
    bad, bad_values = np.zeros(len(frame), dtype=bool), []
    nonfinite = np.zeros(n_columns, dtype=np.int64)
    low, high, largest = (np.full(n_columns, np.nan) for _ in range(3))
    for start, values in _row_chunks(frame, positions):
        with np.errstate(invalid="ignore"):
            finite = np.abs(values) <= FLOAT32_MAX  # False for NaN, ±inf and values float32 cannot hold
        bad_here = ~finite.all(axis=1)
        bad[start:start + len(values)] = bad_here
        if bad_here.any():
            bad_values.append(values[bad_here])
            nonfinite += (~finite).sum(axis=0)
            usable = values[~bad_here] if policy == "drop" else np.where(finite, values, np.nan)
        else:
            usable = values
        if len(usable):
            low = np.fmin(low, np.fmin.reduce(usable, axis=0))
            high = np.fmax(high, np.fmax.reduce(usable, axis=0))
            largest = np.fmax(largest, np.fmax.reduce(np.abs(usable), axis=0))
    return _Scan(bad=bad, bad_values=np.concatenate(bad_values) if bad_values else np.empty((0, n_columns)),
                 nonfinite_per_column=nonfinite, low=low, high=high, largest=largest)
