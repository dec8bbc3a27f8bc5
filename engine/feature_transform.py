"""The features step's transform: scikit-learn's Pipeline and ColumnTransformer, fitted on train rows only.

Impute with train medians (SimpleImputer) → keep the top-K tabular columns (SelectKBest) → project the tabular
block on PCA components, standardized first so loud stft bins do not drown mel and cqt → standardize every model
input with train mean/std (StandardScaler). VGGish `emb_` columns pass through selection and PCA: those are there
to tame the 2,474 tabular columns.

This module imports scikit-learn; `engine.features.FeatureTransform` loads it on first use.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from engine.config import SETTINGS_BY_NAME
from engine.errors import InputError, StorageError
from engine.features import EMBEDDING_PREFIX, binned_mutual_info
from engine.text import name_list


class FeatureTransform(TransformerMixin, BaseEstimator):
    """`fit(frame_train, y_train)` on the train rows of a table, then `transform(frame)` gives float32 model
    inputs named by `get_feature_names_out()`; `frame` may hold other columns (fname, labels …) too.

    Fitted state: `input_columns_` (the columns the model reads: every embedding and the selected tabular
    columns, in table order), `selector_` (the imputer and SelectKBest that chose them, when select_k is set),
    `pipeline_` (imputer → PCA of the tabular block → scaler, on input_columns_) and `notes_` (what was
    adjusted, e.g. a PCA larger than the data allows).
    """

    def __init__(self, columns=(), *, impute: bool = False, select_k: int | None = None,
                 select_method: str = "anova", pca: int | None = None, seed: int = 42):
        self.columns = columns
        self.impute = impute
        self.select_k = select_k
        self.select_method = select_method
        self.pca = pca
        self.seed = seed

    def fit(self, frame_train: pd.DataFrame, y_train=None, rows=None) -> FeatureTransform:
        """`y_train` (needed for select_k) holds a class per row; multi-label rows use their first label.
        `rows` (positions, all rows when None) picks the train rows here, sparing a copy of the whole table."""
        self._fit(frame_train, y_train, rows)
        return self

    def fit_transform(self, frame_train: pd.DataFrame, y_train=None, rows=None) -> np.ndarray:
        """`fit`, then the train rows' model inputs, from the same float32 copy of them."""
        return self._inputs(self._fit(frame_train, y_train, rows))

    def transform(self, frame: pd.DataFrame, rows=None) -> np.ndarray:
        check_is_fitted(self)
        return self._inputs(self._matrix(frame, self.input_columns_, rows))

    def _fit(self, frame_train: pd.DataFrame, y_train, rows) -> np.ndarray:
        """Fit, and return the train rows' input columns as the pipeline reads them."""
        SETTINGS_BY_NAME["select_method"].check(self.select_method)  # an estimator checks its params in fit
        columns = [str(c) for c in self.columns]
        x = self._matrix(frame_train, columns, rows)
        notes = []
        self.selector_ = None
        if self.impute:
            empty = int(np.isnan(x).all(axis=0).sum())
            if empty:
                notes.append(f"{empty} columns have no value in any train row; they are filled with 0.")
        tabular = np.array([not c.startswith(EMBEDDING_PREFIX) for c in columns], dtype=bool)
        keep = ~tabular
        keep[np.flatnonzero(tabular)[self._select(x[:, tabular], y_train, notes)]] = True
        self.input_columns_ = [c for c, k in zip(columns, keep) if k]
        if not keep.all():
            x = x[:, keep]
        self.pipeline_ = self._pipeline(tabular[keep], len(x), notes).fit(x)
        self.notes_ = tuple(notes)
        return x

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        return self.pipeline_.transform(x).astype(np.float32, copy=False)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The model inputs' names: the input columns, with the tabular block's PCA components as pca0, pca1 …"""
        check_is_fitted(self)
        return self.pipeline_.get_feature_names_out(self.input_columns_)

    def __setstate__(self, state: dict) -> None:
        if "_fitted" in state:  # pickled by the hand-written transform this one replaced
            raise StorageError("This model was saved by an earlier vggtab whose feature transform this version "
                               "cannot read.",
                               hint="Rerun its run (the history records its config) to save the model again.")
        super().__setstate__(state)

    def _select(self, tabular: np.ndarray, y_train, notes: list[str]) -> np.ndarray:
        """Positions (within the tabular block) of the columns to keep: the top K by score, or all."""
        every = np.arange(tabular.shape[1])
        if not self.select_k or tabular.shape[1] == 0:
            return every
        if self.select_k >= tabular.shape[1]:
            notes.append(f"select_k={self.select_k} keeps all {tabular.shape[1]:,} tabular columns.")
            return every
        if y_train is None:
            raise ValueError("FeatureTransform.fit needs y_train to select columns (select_k is set).")
        y = np.asarray([row[0] if isinstance(row, (list, tuple, np.ndarray)) else row for row in y_train])
        score = anova_scores if self.select_method == "anova" else binned_mutual_info
        self.selector_ = Pipeline(self._impute() + [("select", SelectKBest(score, k=self.select_k))])
        self.selector_.fit(tabular, y)
        return np.flatnonzero(self.selector_.named_steps["select"].get_support())

    def _pipeline(self, tabular: np.ndarray, n_rows: int, notes: list[str]) -> Pipeline:
        steps = self._impute()
        n_tabular = int(tabular.sum())
        if self.pca and n_tabular:
            n_components = min(self.pca, n_rows, n_tabular)
            if n_components < self.pca:
                notes.append(f"pca={self.pca} is more than the data allows; using {n_components} components.")
            project = Pipeline([("standardize", StandardScaler()),
                                ("pca", PCA(n_components=n_components, random_state=self.seed))])
            steps.append(("project", ColumnTransformer(
                [("embeddings", "passthrough", np.flatnonzero(~tabular)),
                 ("tabular", project, np.flatnonzero(tabular))], verbose_feature_names_out=False)))
        # In place: its input is this transform's own copy of the rows, or the step before's output.
        return Pipeline(steps + [("scale", StandardScaler(copy=False))])

    def _impute(self) -> list[tuple[str, SimpleImputer]]:
        # keep_empty_features: a column with no train value is filled with 0 rather than silently dropped.
        return [("impute", SimpleImputer(strategy="median", keep_empty_features=True))] if self.impute else []

    def _matrix(self, frame: pd.DataFrame, columns: list[str], rows=None) -> np.ndarray:
        """The columns (of `rows`, or every row) as float32, a copy of only those; NaN/inf become NaN for the
        imputer, or an InputError when imputation is off."""
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"The table lacks feature columns {name_list(missing)}.",
                             hint="Use a table with the same feature columns as the one the transform was fitted "
                                  "on.")
        rows = np.arange(len(frame)) if rows is None else np.asarray(rows)
        # Our own writable copy (pandas hands out read-only views): the steps below work on it in place.
        x = frame.iloc[rows, frame.columns.get_indexer(columns)].to_numpy(dtype=np.float32, copy=True)
        bad = ~np.isfinite(x)
        if not bad.any():
            return x
        if not self.impute:
            row, column = (int(i) for i in np.argwhere(bad)[0])
            key = frame["fname"].iloc[rows[row]] if "fname" in frame.columns else f"row {rows[row]}"
            raise InputError(f"Feature {columns[column]} of {key} is {x[row, column]} and imputation is off "
                             f"({int(bad.any(axis=1).sum()):,} rows have NaN/inf).",
                             hint="Use bad_rows=impute, or bad_rows=drop so the audit removes those rows.")
        x[bad] = np.nan
        return x


def anova_scores(x: np.ndarray, y) -> np.ndarray:
    """ANOVA F per column; a constant column scores NaN, which SelectKBest ranks last, without a warning each."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return f_classif(x, y)[0]
