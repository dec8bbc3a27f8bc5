"""Predict: class probabilities for new, unlabeled clips from a saved model, and the submission file.

The new files take the training path (load, merge on the same key, audit with the same bad-rows policy) and then
the model's own fitted FeatureTransform, so every input column, its order and its normalization match training.
The submission is `fname` plus one probability column per class, in the model's class order.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine import load, merge
from engine.audit import audit_features
from engine.errors import InputError, StorageError
from engine.store.files import atomic_write, check_writable
from engine.store.outputs import check_output_target, csv_header
from engine.text import name_list

OUT = "out"  # the setting that names the submission file
SUBMISSION = "a submission CSV"


@dataclass(frozen=True)
class Prediction:
    frame: pd.DataFrame  # fname, then one probability column per class in the model's class order
    dropped: tuple[tuple[str, str], ...]  # (fname, why) for every matched clip left out of `frame`
    warnings: tuple[str, ...]  # unmatched clips, imputed rows, odd columns …
    label_mode: str  # single: each row sums to 1 (softmax); multi: one sigmoid per class
    sources: tuple[str, ...] = ()  # the model and data files it was made from: a submission never replaces them


def predict_files(model_path, embeddings, tabular, *, key: str | None = None, models_dir="models",
                  allow_outside: bool = False, cache_dir=None) -> Prediction:
    """Probabilities of every clip present in both files and kept by the audit.

    `key` names the key column; by default the one the model was trained with (fname/file when none was given).
    Raises InputError for unusable files or missing feature columns, StorageError for a file that is not a
    vggtab model (or lies outside `models_dir` without `allow_outside`).
    """
    return _predict(model_path, NewClips(embeddings, tabular, cache_dir=cache_dir), key=key, models_dir=models_dir,
                    allow_outside=allow_outside)


def predict_run(results_dir, record, embeddings, tabular, *, key: str | None = None, models_dir="models",
                allow_outside: bool = False, cache_dir=None) -> Prediction:
    """`predict_files` for a finished run of the history in `results_dir`: its saved model, or for an ensemble
    the mean of its members' probabilities (members found in that history) on the clips every member kept."""
    from engine.approaches import ensemble_members, is_ensemble, saved_model_path

    clips = NewClips(embeddings, tabular, cache_dir=cache_dir)

    def prediction(run) -> Prediction:
        if is_ensemble(run):
            return mean_prediction([prediction(member) for member in ensemble_members(results_dir, run)])
        return _predict(saved_model_path(run, "Predicting"), clips, key=key, models_dir=models_dir,
                        allow_outside=allow_outside)

    return prediction(record)


class NewClips:
    """The new embeddings and tabular files, loaded once and merged once per key column, for one or more models."""

    def __init__(self, embeddings, tabular, *, cache_dir=None):
        self.embeddings, self.tabular, self.cache_dir = embeddings, tabular, cache_dir
        self._tables: tuple[pd.DataFrame, pd.DataFrame] | None = None
        self._merged: dict[str | None, merge.Merged] = {}

    def merged(self, key: str | None) -> merge.Merged:
        if self._tables is None:
            self._tables = (load.load_table(self.embeddings, cache_dir=self.cache_dir).frame,
                            load.load_table(self.tabular, cache_dir=self.cache_dir).frame)
        if key not in self._merged:
            self._merged[key] = merge.merge_tables(*self._tables, embeddings_path=str(self.embeddings),
                                                   tabular_path=str(self.tabular), key=key, labels_required=False)
        return self._merged[key]


def _predict(model_path, clips: NewClips, *, key: str | None, models_dir, allow_outside: bool) -> Prediction:
    from engine import model
    from engine.store.models import load_model
    saved = load_model(model_path, models_dir=models_dir, allow_outside=allow_outside)
    info = getattr(saved, "vggtab", None)
    if not isinstance(info, model.ModelInfo):
        raise StorageError(f"{model_path} is a fastai model that vggtab did not train: it does not record its "
                           "classes and feature columns.", hint="Pick a .pkl file that vggtab saved under models/.")
    merged = clips.merged(key if key is not None else info.config.get("key"))
    embeddings, tabular = clips.embeddings, clips.tabular
    columns = list(info.transform.input_columns_)
    check_feature_columns(merged.frame, columns, embeddings, tabular)
    policy = info.config.get("bad_rows", "drop")
    audit = audit_features(merged.frame, columns, key=merge.MERGED_KEY, policy=policy)
    if audit.dropped_columns:
        raise InputError(f"Feature columns {name_list(audit.dropped_columns)} hold no values at all in {embeddings} "
                         f"and {tabular}; the model needs them.",
                         hint="Fill those columns the way the training files were made.")

    model.set_threads(info.config.get("threads"))  # as in training, so the numbers match it to the last bit
    probs = probabilities(saved, info.transform.transform(audit.frame))
    frame = pd.DataFrame(probs, columns=list(info.classes))
    frame.insert(0, merge.MERGED_KEY, audit.frame[merge.MERGED_KEY].to_numpy())
    warnings = list(merged.warnings) + list(audit.warnings)
    if policy == "impute" and audit.bad_rows:
        warnings.append(f"{len(audit.bad_rows):,} clips had NaN/inf features, filled with the training medians "
                        f"(e.g. {', '.join(k for k, _ in audit.bad_rows[:3])}).")
    return Prediction(frame=frame, dropped=audit.bad_rows if policy == "drop" else (),
                      warnings=tuple(warnings), label_mode=info.label_mode,
                      sources=(str(model_path), str(embeddings), str(tabular)))


def mean_prediction(members: list[Prediction]) -> Prediction:
    """An ensemble's prediction: the members' mean probabilities on the clips all of them kept, in the first
    member's row order, as approaches.ensemble averages their valid probabilities. A clip any member dropped is
    dropped, with the first member's reason."""
    first = members[0]
    kept = set.intersection(*(set(m.frame[merge.MERGED_KEY]) for m in members))
    keys = [k for k in first.frame[merge.MERGED_KEY] if k in kept]
    probs = np.mean([m.frame.set_index(merge.MERGED_KEY).loc[keys].to_numpy() for m in members], axis=0)
    frame = pd.DataFrame(probs, columns=first.frame.columns[1:])
    frame.insert(0, merge.MERGED_KEY, keys)
    dropped: dict[str, str] = {}
    for member in members:
        for fname, why in member.dropped:
            dropped.setdefault(fname, why)
    return Prediction(frame=frame, dropped=tuple(dropped.items()),
                      warnings=tuple(dict.fromkeys(w for m in members for w in m.warnings)),
                      label_mode=first.label_mode, sources=tuple(dict.fromkeys(s for m in members for s in m.sources)))


def probabilities(saved, x) -> np.ndarray:
    """Class probabilities from what store.models.load_model returned: a fastai Learner or a saved baseline."""
    from engine import model
    from engine.baselines import SavedBaseline

    if isinstance(saved, SavedBaseline):
        return saved.probabilities(x)
    return model.predict_proba(saved.model, x, multi_label=saved.vggtab.label_mode == "multi")


def check_feature_columns(frame: pd.DataFrame, columns: list[str], embeddings, tabular) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{embeddings} and {tabular} lack {len(missing):,} feature columns the model was trained "
                         f"on: {name_list(missing)}.",
                         hint="Give files with the same feature columns as the training files, or a model trained "
                              "on the feature groups these files have.")


def check_submission_target(out_path, *, force: bool = False, sources=()) -> Path:
    """StorageError unless a submission may go to `out_path`: a new file, or with `force` an earlier submission;
    never one of `sources` nor anything else vggtab keeps (store.outputs.check_output_target). Creates its
    folder. Called before predicting, so a refused path costs no work, and again by write_submission."""
    path = check_output_target(out_path, SUBMISSION, is_submission, force=force, keep=sources, setting=OUT)
    check_writable(path.parent, OUT)
    return path


def write_submission(prediction: Prediction, out_path, *, force: bool = False) -> Path:
    """The submission CSV, written completely or not at all, where check_submission_target allows it."""
    path = check_submission_target(out_path, force=force, sources=prediction.sources)
    frame = prediction.frame
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False), setting=OUT)


def is_submission(lines: list[str]) -> bool:
    """The first lines of a file are those of a submission: the key, then one probability per class."""
    header = csv_header(lines)
    if header[:1] != [merge.MERGED_KEY] or len(header) < 2:
        return False
    first_row = next(csv.reader(lines[1:2]), None)
    if first_row is None:
        return True
    try:
        return len(first_row) == len(header) and all(0 <= float(cell) <= 1 for cell in first_row[1:])
    except ValueError:
        return False
