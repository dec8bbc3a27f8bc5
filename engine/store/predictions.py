"""Each run's validation-set probabilities (results/predictions/<run id>.npz), for paired tests and ensembles."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import StorageError
from engine.store.files import atomic_write, make_folder

PREDICTIONS_DIR = "predictions"


@dataclass(frozen=True)
class Predictions:
    keys: np.ndarray  # clip file names, aligned with the rows below
    classes: tuple[str, ...]
    probs: np.ndarray  # (clips, classes)
    targets: np.ndarray  # class index per clip, or (clips, classes) bools for multi-label


def predictions_path(results_dir, run_id: str) -> Path:
    if not re.fullmatch(r"[\w.-]+", run_id) or run_id.startswith("."):
        raise StorageError(f"Run id {run_id!r} cannot name a file.", hint="Use the run id from the history.")
    return Path(results_dir) / PREDICTIONS_DIR / f"{run_id}.npz"


def save_predictions(results_dir, run_id: str, keys, classes, probs, targets) -> Path:
    keys, probs, targets = np.asarray(keys, dtype=str), np.asarray(probs, dtype=float), np.asarray(targets)
    classes = np.asarray(classes, dtype=str)
    if probs.shape != (len(keys), len(classes)) or len(targets) != len(keys):
        raise ValueError(f"Need probs of shape (clips, classes) = ({len(keys)}, {len(classes)}) and one target "
                         f"per clip, got probs {probs.shape} and {len(targets)} targets.")
    path = predictions_path(results_dir, run_id)
    make_folder(path.parent)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, keys=keys, classes=classes, probs=probs, targets=targets)

    return atomic_write(path, write)


def load_predictions(results_dir, run_id: str) -> Predictions:
    path = predictions_path(results_dir, run_id)
    if not path.is_file():
        raise StorageError(f"No saved predictions for run {run_id} in {path.parent}.",
                           hint="Runs save their predictions when they finish; rerun it to compare.")
    try:
        with np.load(path, allow_pickle=False) as saved:
            return Predictions(keys=saved["keys"], classes=tuple(saved["classes"].tolist()),
                               probs=saved["probs"], targets=saved["targets"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise StorageError(f"Predictions file {path} is damaged ({exc}).",
                           hint="Delete it and rerun the run to save them again.") from exc
