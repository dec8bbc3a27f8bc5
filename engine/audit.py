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

    values = frame[columns].to_numpy(dtype=np.float64)
    empty = np.isnan(values).all(axis=0)
    dropped = tuple(np.asarray(columns, dtype=object)[empty])
    columns = [c for c, gone in zip(columns, empty) if not gone]
    values = values[:, ~empty]
    warnings = [f"Columns {name_list(dropped)} hold no values at all; they were dropped."] if dropped else []

    with np.errstate(invalid="ignore"):
        finite = np.abs(values) <= FLOAT32_MAX  # False for NaN, ±inf and values float32 cannot hold
    bad = ~finite.all(axis=1)
    bad_at = np.flatnonzero(bad)
    bad_values = values[bad_at]  # few rows: NaN, inf and overflow are told apart only here
    bad_rows = tuple((keys[i], _describe(row, columns)) for i, row in zip(bad_at, bad_values))
    if policy == "drop" and bad.all():
        worst = columns[int((~finite).sum(axis=0).argmax())]
        raise InputError(f"Every row has NaN, inf or a value beyond float32 in some feature (most often in {worst}).",
                         hint="Use bad_rows=impute to fill them with train medians, or fix the file.")

    usable = values[~bad] if policy == "drop" else np.where(finite, values, np.nan)
    constant, absurd = _column_checks(usable, columns)
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
    else:
        out_of_range = [c for c, has in zip(columns, (np.abs(bad_values) > FLOAT32_MAX).any(axis=0)) if has]
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


def _column_checks(values: np.ndarray, columns: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(constant, absurd) columns, judged on the finite values (NaN elsewhere); fmin/fmax skip NaN."""
    names = np.asarray(columns, dtype=object)
    constant = np.fmin.reduce(values, axis=0) == np.fmax.reduce(values, axis=0)
    absurd = np.fmax.reduce(np.abs(values), axis=0) > ABSURD_MAGNITUDE
    return tuple(names[constant]), tuple(names[absurd])
