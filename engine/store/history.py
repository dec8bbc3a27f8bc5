"""results/history.jsonl: one JSON line per run, appended under a lock, read back line by line.

Why a JSON-lines file and not SQLite: it is human-readable, greppable and diffable, and append-only means a
crash can at worst tear the last line, which `load_history` skips.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import reprlib
import types
import typing
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
from filelock import FileLock, Timeout

from engine.config import RunConfig
from engine.errors import StorageError
from engine.events import RunRecord
from engine.store.files import fsync_folder, make_folder, storage_error

HISTORY_FILE = "history.jsonl"
HISTORY_LOCK = "history.lock"
SCHEMA = 1
TEXT_METRICS = ("lr_source",)  # every other metric is a number, or null where a run has none
LOCK_TIMEOUT_SECONDS = 60  # an append takes milliseconds; a holder this slow is stuck


@dataclass(frozen=True)
class HistoryLoad:
    records: list[RunRecord]
    warnings: list[str]  # one per skipped line, naming its number


def history_path(results_dir) -> Path:
    return Path(results_dir) / HISTORY_FILE


@contextmanager
def _history_lock(results_dir: Path, *, writing: bool):
    """A lock file beside the history, so readers never see a line while a writer is adding it.

    A reader that cannot make the lock file (a read-only copy of a results folder) reads without it: nothing
    can be appending there either.
    """
    lock = FileLock(results_dir / HISTORY_LOCK, timeout=LOCK_TIMEOUT_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        raise StorageError(f"Another vggtab process has held {lock.lock_file} for {LOCK_TIMEOUT_SECONDS} s.",
                           hint="Wait for it to finish, or stop it if it hangs.") from None
    except OSError:
        if writing:
            raise
        yield
        return
    try:
        yield
    finally:
        lock.release()


def append_record(results_dir, record: RunRecord) -> Path:
    """Add one run to results/history.jsonl.

    The lock makes concurrent writers (two app instances, an app and a CLI run) safe: each line goes out in
    one `os.write` on an O_APPEND descriptor and is fsynced before the lock is released.
    """
    results_dir = make_folder(results_dir)
    path = history_path(results_dir)
    line = (json.dumps(_strict_json({**asdict(record), "schema": SCHEMA}), ensure_ascii=False,
                       default=_json_default) + "\n").encode("utf-8")
    try:
        with _history_lock(results_dir, writing=True):
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a killed writer left a torn line: start on a fresh one
                if os.write(fd, line) != len(line):
                    raise OSError(errno.ENOSPC, "the disk took only part of the line")
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_folder(path)
    except OSError as exc:
        raise storage_error(exc, path, "append to") from exc
    return path


def _strict_json(value):
    """NaN and infinity become null so every line is strict JSON (jq, other languages)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item) for item in value]
    if isinstance(value, np.generic):
        return _strict_json(value.item())
    return value


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return _strict_json(value.tolist())
    raise TypeError(f"{type(value).__name__} cannot be stored in the history")


def load_history(results_dir) -> HistoryLoad:
    """Every readable run in results/history.jsonl, oldest first; never rewrites the file.

    A torn or garbled line, or a row from another version that cannot become a RunRecord, is skipped
    with a warning naming its line number. Unknown keys are ignored; missing optional keys default.
    """
    results_dir = Path(results_dir)
    path = history_path(results_dir)
    if not path.exists():
        return HistoryLoad([], [])
    try:
        with _history_lock(results_dir, writing=False):
            data = path.read_bytes()
    except FileNotFoundError:
        return HistoryLoad([], [])
    except OSError as exc:
        raise storage_error(exc, path, "read") from exc
    records, warnings = [], []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            records.append(record_from_row(json.loads(raw)))
        except (UnicodeDecodeError, json.JSONDecodeError):
            warnings.append(f"{path} line {number}: skipped, it is not complete JSON (a write cut short?).")
        except ValueError as exc:
            warnings.append(f"{path} line {number}: skipped, {exc}.")
    return HistoryLoad(records, warnings)


def record_from_row(row) -> RunRecord:
    """A RunRecord from one history row; ValueError saying what is wrong if it cannot be one.

    Types are checked down to the values front ends read as numbers (config settings, metrics, epoch rows),
    so a hand-edited '"lr": "1e-3"' skips its line instead of breaking the whole table.
    """
    if not isinstance(row, dict):
        raise ValueError(f"it holds a {type(row).__name__}, not a run")
    values = {}
    for name, hint, fits, required in _RECORD_FIELDS:
        if name not in row:
            if required:
                raise ValueError(f"it has no {name!r} (a row from another version?)")
            continue
        value = row[name]
        if not fits(value):
            raise _wrong_type(f"its {name!r}", value, hint)
        if typing.get_origin(hint) is tuple:
            value = tuple(value)
        elif hint is float:
            value = float(value)
        values[name] = value
    for name, value in values["config"].items():
        if name in _CONFIG_FIELDS and not _CONFIG_FIELDS[name][1](value):
            raise _wrong_type(f"its config {name!r}", value, _CONFIG_FIELDS[name][0])
    for name, value in values.get("metrics", {}).items():
        hint = str if name in TEXT_METRICS else NUMBER_OR_NULL
        if not _fits(hint)(value):
            raise _wrong_type(f"its metric {name!r}", value, hint)
    number_or_null = _fits(NUMBER_OR_NULL)
    for number, epoch in enumerate(values.get("history", ()), start=1):
        for name, value in epoch.items():
            if not number_or_null(value):
                raise _wrong_type(f"its epoch {number} {name!r}", value, NUMBER_OR_NULL)
    return RunRecord(**values)


def _wrong_type(what: str, value, hint) -> ValueError:
    return ValueError(f"{what} is {reprlib.repr(value)}, not {_described(hint)}")


@functools.cache
def _fits(hint) -> Callable[[object], bool]:
    """A test that a value as json.loads makes it fits `hint` (tuples are lists; an int is a float; True is no
    number); hints it cannot judge pass. Built once per hint and by exact JSON type, as a history of thousands
    of runs checks tens of values per line."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    exact, tests = set(), []
    for arg in args:
        if arg is float:
            exact |= {int, float}
        elif arg is type(None) or isinstance(arg, type):
            exact.add(arg)
        elif typing.get_origin(arg) is tuple:
            item = _fits(typing.get_args(arg)[0])
            tests.append(lambda value: type(value) is list and all(item(v) for v in value))
        else:
            return lambda value: True
    exact = frozenset(exact)
    if not tests:
        return lambda value: type(value) in exact
    return lambda value: type(value) in exact or any(test(value) for test in tests)


def _described(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_described(arg) for arg in args)
    if origin is tuple:
        return f"a list of {_described(args[0]).removeprefix('a ')}s"
    return {type(None): "null", float: "a number", int: "a whole number", str: "text", bool: "true or false",
            dict: "a mapping"}.get(hint, f"a {getattr(hint, '__name__', hint)}")


NUMBER_OR_NULL = float | None
# (name, type, its test, required) per RunRecord field, and (type, test) per RunConfig setting; null is any
# setting's value in a run that lacks it (an ensemble has no epochs).
_RECORD_HINTS = typing.get_type_hints(RunRecord)
_RECORD_FIELDS = [(f.name, _RECORD_HINTS[f.name], _fits(_RECORD_HINTS[f.name]),
                   f.default is MISSING and f.default_factory is MISSING) for f in fields(RunRecord)]
_CONFIG_FIELDS = {name: (hint | None, _fits(hint | None)) for name, hint in typing.get_type_hints(RunConfig).items()}
