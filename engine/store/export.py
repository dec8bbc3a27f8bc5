"""The comparison table of many runs, exported as CSV (numbers as stored) or Markdown (rounded for reading)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from engine.errors import ConfigError
from engine.events import RunRecord
from engine.store.files import atomic_write, make_folder
from engine.store.outputs import check_output_target, csv_header
from engine.store.tables import csv_writer, mlp_layers
from engine.text import interval_text

EXPORT_FORMATS = ("csv", "markdown")
EXPORT = "export"  # the setting that names the file
TABLE_COLUMNS = ("approach", "status", "features", "layers", "lr", "epochs", "val_accuracy", "ci_low", "ci_high",
                 "error_rate", "lwlrap", "train_seconds", "num_params", "created")
MARKDOWN_HEADER = ("approach", "status", "features", "layers", "lr", "epochs", "val accuracy", "95 % CI",
                   "error rate", "lwlrap", "train s", "params", "created")
NO_VALUE = "–"  # a Markdown cell with nothing to show: a failed or cancelled run has no accuracy
TABLE = "an exported results table"
# Version 0.1.0 wrote the same tables without the status column; an export may replace those too.
_HEADERS_WRITTEN = [TABLE_COLUMNS, tuple(c for c in TABLE_COLUMNS if c != "status")]
_MARKDOWN_HEADERS_WRITTEN = [MARKDOWN_HEADER, tuple(c for c in MARKDOWN_HEADER if c != "status")]


def table_row(record: RunRecord) -> dict:
    """One run as a row of the comparison table (numbers left as numbers)."""
    config, metrics = record.config, record.metrics
    return {
        "approach": record.approach,
        "status": record.status,
        "features": config.get("features", ""),
        "layers": mlp_layers(config) or config.get("model", ""),
        "lr": metrics.get("learning_rate", config.get("lr")),
        "epochs": config.get("epochs"),
        "val_accuracy": metrics.get("val_accuracy"),
        "ci_low": metrics.get("ci_low"),
        "ci_high": metrics.get("ci_high"),
        "error_rate": metrics.get("error_rate"),
        "lwlrap": metrics.get("lwlrap"),
        "train_seconds": record.train_seconds,
        "num_params": record.num_params,
        "created": record.created,
    }


def export_table(records: Iterable[RunRecord], path, fmt: str, *, force: bool = False) -> Path:
    """Write the comparison table as "csv" (numbers as stored, empty where a run has none) or "markdown"
    (rounded for reading, NO_VALUE where a run has none); both keep each run's status.

    An existing `path` is replaced only if it is an exported table and `force` is set (outputs.check_output_target).
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Export format {fmt!r} is not known.", hint=f"Use one of {', '.join(EXPORT_FORMATS)}.")
    rows = [table_row(record) for record in records]
    path = check_output_target(path, TABLE, is_exported_table, force=force, setting=EXPORT)
    make_folder(path.parent, EXPORT)
    if fmt == "csv":
        atomic_write(path, csv_writer(TABLE_COLUMNS, rows), setting=EXPORT)
    else:
        text = _markdown_table(rows)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), setting=EXPORT)
    return path


def is_exported_table(lines: list[str]) -> bool:
    """The first lines of a file are those of a table export_table wrote (this version or 0.1.0)."""
    return (lines[0] in [_markdown_row(header) for header in _MARKDOWN_HEADERS_WRITTEN]
            or tuple(csv_header(lines)) in _HEADERS_WRITTEN)


def _markdown_row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _markdown_table(rows: list[dict]) -> str:
    lines = [_markdown_row(MARKDOWN_HEADER), "|" + "|".join("---" for _ in MARKDOWN_HEADER) + "|"]
    for row in rows:
        cells = (row["approach"], row["status"], row["features"], row["layers"], _number(row["lr"], ".2g"),
                 _number(row["epochs"], "d"), _number(row["val_accuracy"], ".2%"),
                 interval_text(row["ci_low"], row["ci_high"]),
                 _number(row["error_rate"], ".2%"), _number(row["lwlrap"], ".3f"), _number(row["train_seconds"], ".1f"),
                 _number(row["num_params"], ","), row["created"])
        lines.append(_markdown_row(str(cell or NO_VALUE).replace("|", "\\|") for cell in cells))
    return "\n".join(lines) + "\n"


def _number(value, spec: str) -> str:
    return "" if value is None else format(value, spec)
