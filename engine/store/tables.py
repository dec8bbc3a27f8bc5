"""The notebook's per-run CSVs: `<approach>_results_<timestamp>.csv` and `<approach>_history_<timestamp>.csv`."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

from engine.events import RunRecord
from engine.store.files import atomic_write, make_folder, write_new
from engine.store.names import TIMESTAMP_FORMAT, run_suffix, safe_name, timestamp
from engine.text import layers_text


# The notebook's results columns first, then what vggtab adds.
RESULTS_COLUMNS = (
    "timestamp", "model", "features", "vggish_features", "tabular_features", "num_classes", "train_samples",
    "val_samples", "epochs", "learning_rate", "training_time_sec", "val_accuracy", "error_rate", "num_params",
    "run_id", "approach", "status", "layers", "n_features", "ci_low", "ci_high", "train_accuracy",
    "random_baseline", "majority_baseline", "lwlrap", "split_id", "model_path",
)
EPOCH_COLUMNS = ("epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "seconds")


def write_run_csvs(results_dir, record: RunRecord) -> tuple[Path, Path]:
    """The notebook's per-run files: `<approach>_results_<timestamp>.csv` (one row: the run's numbers)
    and `<approach>_history_<timestamp>.csv` (one row per epoch). Returns (results, history) paths."""
    results_dir = make_folder(results_dir)
    stem, stamp = safe_name(record.approach), _record_stamp(record)
    # Another run of this approach in the same second (in this or another process) may hold the name: the
    # results CSV takes the run id's suffix then, and the history CSV follows its name.
    results_path = write_new(results_dir / f"{stem}_results_{stamp}.csv",
                             csv_writer(RESULTS_COLUMNS, [results_row(record, stamp)]),
                             fallback_suffix=run_suffix(record.run_id))
    epochs_path = results_path.with_name(results_path.name.replace(f"{stem}_results_", f"{stem}_history_", 1))
    epoch_columns = list(EPOCH_COLUMNS)
    for epoch in record.history:
        epoch_columns += [key for key in epoch if key not in epoch_columns]
    atomic_write(epochs_path, csv_writer(epoch_columns, record.history))
    return results_path, epochs_path


def results_row(record: RunRecord, stamp: str = "") -> dict:
    """One run as the notebook's results row plus vggtab's extra columns."""
    config, metrics = record.config, record.metrics
    return {
        "timestamp": stamp or _record_stamp(record),
        "model": config.get("model", ""),
        "features": config.get("features", ""),
        "vggish_features": metrics.get("vggish_features"),
        "tabular_features": metrics.get("tabular_features"),
        "num_classes": metrics.get("num_classes"),
        "train_samples": metrics.get("train_samples"),
        "val_samples": metrics.get("val_samples"),
        "epochs": config.get("epochs"),
        "learning_rate": metrics.get("learning_rate", config.get("lr")),
        "training_time_sec": record.train_seconds,
        "val_accuracy": metrics.get("val_accuracy"),
        "error_rate": metrics.get("error_rate"),
        "num_params": record.num_params,
        "run_id": record.run_id,
        "approach": record.approach,
        "status": record.status,
        "layers": mlp_layers(config),
        "n_features": metrics.get("n_features"),
        "ci_low": metrics.get("ci_low"),
        "ci_high": metrics.get("ci_high"),
        "train_accuracy": metrics.get("train_accuracy"),
        "random_baseline": metrics.get("random_baseline"),
        "majority_baseline": metrics.get("majority_baseline"),
        "lwlrap": metrics.get("lwlrap"),
        "split_id": record.split_id,
        "model_path": record.model_path,
    }


def csv_writer(columns: Iterable[str], rows: Iterable[dict]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return write


def _record_stamp(record: RunRecord) -> str:
    try:
        return datetime.fromisoformat(record.created).strftime(TIMESTAMP_FORMAT)
    except ValueError:
        return timestamp()


def mlp_layers(config: dict) -> str:
    return layers_text(config.get("layers", ())) if config.get("model", "mlp") == "mlp" else ""
