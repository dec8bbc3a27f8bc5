"""Which existing file a user-named output (a submission, an exported table) may replace.

A mistyped output path must never cost what a user keeps: the run history, a model, a run's CSVs or saved
predictions, the input data, or any file vggtab did not write. An output only replaces an earlier output of
the same kind, and only when the user asks for it (force). Each writer knows its own format, so it passes the
test that recognises it.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable, Iterable

from engine.config import FEATURE_GROUPS
from engine.errors import StorageError
from engine.store.files import pick_another
from engine.store.history import HISTORY_FILE, HISTORY_LOCK
from engine.store.models import PICKLE_MAGIC, ZIP_MAGIC
from engine.store.tables import EPOCH_COLUMNS, RESULTS_COLUMNS

FORCE = "force=true"  # the setting that lets an output replace an earlier one of its kind
HEAD_BYTES = 64 * 1024  # a header of a few thousand columns and the first row


def check_output_target(path, kind: str, is_same_kind: Callable[[list[str]], bool], *, force: bool = False,
                        keep: Iterable = (), setting: str) -> Path:
    """Raise StorageError unless `path` may receive an output of `kind` (e.g. "a submission CSV").

    A new path is fine. An existing file is replaced only if `is_same_kind(its first lines)` and `force` is
    set; never the history, a model, a run's CSVs or predictions, one of `keep` (the command's inputs), a data
    file, a folder, or a file vggtab does not recognise. `setting` names the setting that picked the path.
    """
    path = Path(path)
    another = pick_another(setting)
    another = another[0].upper() + another[1:]
    keep_it = f"{another}; nothing was written."
    if path.name in (HISTORY_FILE, HISTORY_LOCK):
        raise StorageError(f"{path} is the run history's name: vggtab never writes {kind} there.", hint=keep_it)
    if not os.path.lexists(path):
        return path
    if path.is_dir():
        raise StorageError(f"{path} is a folder, not a file name.", hint=f"Name a file inside it with {setting}=PATH.")
    if any(_same_file(path, kept) for kept in keep):
        raise StorageError(f"{path} is one of this command's inputs: vggtab never writes over it.", hint=keep_it)
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError as exc:
        raise StorageError(f"{path} exists and cannot be read ({exc.strerror or exc}): vggtab never writes over "
                           "a file it cannot check.", hint=keep_it) from exc
    lines = _text_lines(head)
    kept = _kept_kind(head, lines, path)
    if kept:
        raise StorageError(f"{path} is {kept}: vggtab never writes over it.", hint=keep_it)
    if lines is None or not lines or not is_same_kind(lines):
        raise StorageError(f"{path} already exists and is not {kind}: vggtab only ever replaces an earlier "
                           "one.", hint=keep_it)
    if not force:
        raise StorageError(f"{path} already holds {kind}.",
                           hint=f"{another}, or add {FORCE} to replace it.")
    return path


def csv_header(lines: list[str]) -> list[str]:
    return next(csv.reader(lines[:1]), [])


def _text_lines(head: bytes) -> list[str] | None:
    try:
        return head.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def _kept_kind(head: bytes, lines: list[str] | None, path: Path) -> str:
    """What vggtab keeps and an output never replaces, by content (names can be anything); "" if none."""
    if head.startswith(ZIP_MAGIC):
        return "a run's saved predictions" if path.suffix == ".npz" else "a saved model"
    if head.startswith(PICKLE_MAGIC):
        return "a saved model"
    if head.startswith((b"PAR1", b"ARROW1")):
        return "a data file"
    if not lines:
        return ""
    if lines[0].startswith("{") and '"run_id"' in lines[0]:
        return "a run history"
    header = csv_header(lines)
    if header[:1] == [RESULTS_COLUMNS[0]] and "val_accuracy" in header:
        return "a run's results CSV"
    if header[:len(EPOCH_COLUMNS)] == list(EPOCH_COLUMNS):
        return "a run's epoch history CSV"
    if any(name.startswith(tuple(FEATURE_GROUPS.values())) for name in header):
        return "a data file with feature columns"
    return ""


def _same_file(path: Path, other) -> bool:
    try:
        return os.path.samefile(path, other)
    except (OSError, TypeError):
        return False
