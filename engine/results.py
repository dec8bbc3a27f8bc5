"""Saving what a run produced so it survives a crash: models, the run history, CSVs and predictions.

Every file under models/ and results/ is either complete or absent: files are written to a hidden
temp name in the same folder and renamed over the target (`atomic_write`); the history is one
append-only JSON-lines file guarded by a lock. fastai is imported only by the functions that need it.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import math
import os
import pickle
import re
import secrets
import typing
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from engine.errors import ConfigError, StorageError
from engine.events import RunRecord

HISTORY_FILE = "history.jsonl"
HISTORY_LOCK = "history.lock"
PREDICTIONS_DIR = "predictions"
SCHEMA = 1
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
EXPORT_FORMATS = ("csv", "markdown")
# The command-line options that let the user pick another place:
RESULTS_FLAG, MODELS_FLAG, EXPORT_FLAG = "--results-dir", "--models-dir", "--export path"

# The notebook's results columns first, then what vggtab adds.
RESULTS_COLUMNS = (
    "timestamp", "model", "features", "vggish_features", "tabular_features", "num_classes", "train_samples",
    "val_samples", "epochs", "learning_rate", "training_time_sec", "val_accuracy", "error_rate", "num_params",
    "run_id", "approach", "status", "layers", "n_features", "ci_low", "ci_high", "train_accuracy",
    "random_baseline", "majority_baseline", "lwlrap", "split_id", "model_path",
)
EPOCH_COLUMNS = ("epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "seconds")
TABLE_COLUMNS = ("approach", "features", "layers", "lr", "epochs", "val_accuracy", "ci_low", "ci_high",
                 "error_rate", "lwlrap", "train_seconds", "num_params", "created")
# A fastai export is torch.save's zip archive; a bare pickle (protocol 2+) is a saved baseline.
PICKLE_MAGIC = b"\x80"
MODEL_MAGICS = (b"PK\x03\x04", PICKLE_MAGIC)


# ---------------------------------------------------------------------------------------------- files

def storage_error(exc: OSError, path: Path, doing: str, flag: str = RESULTS_FLAG) -> StorageError:
    """Turn an OSError into a message naming the folder and what the user can do about it."""
    folder = path.parent.absolute()
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f"The disk holding {folder} is full: free some space, or pick another {flag}."
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"Fix the permissions of {folder} (or mount it writable), or pick another {flag}."
    elif exc.errno in (errno.ENOTDIR, errno.ENOENT):
        hint = f"{folder} is not a folder vggtab can use: pick another {flag}."
    else:
        hint = f"Check the disk holding {folder}, or pick another {flag}."
    return StorageError(f"Could not {doing} {path.name} in {folder}: {reason}.", hint=hint)


class NameTaken(Exception):
    """`atomic_write(..., replace=False)` found a file already named so; nothing was written."""


def atomic_write(path, write: Callable[[Path], None], *, flag: str = RESULTS_FLAG, replace: bool = True) -> Path:
    """Write `path` completely or not at all.

    `write(tmp)` fills a hidden temp file in the same folder; it is fsynced, renamed over `path` and the
    folder fsynced so the rename itself survives a power cut. If anything fails the temp file is removed
    and an existing `path` is left as it was. `write` must write to exactly the name it is given (pass
    numpy an open file: `np.savez` would add a suffix to a bare name). With `replace=False` an existing
    `path` is never overwritten, even by another process writing the same name at the same moment: NameTaken.
    """
    path = Path(path)
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"  # ends in .tmp: never matches *.pkl / *.csv
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise storage_error(exc, path, "write", flag) from exc
    try:
        write(tmp)
        _fsync_path(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            _rename_unless_taken(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise storage_error(exc, path, "write", flag) from exc
        raise
    _fsync_folder(folder, path, flag)
    return path


def _rename_unless_taken(tmp: Path, path: Path) -> None:
    """A hard link fails atomically when the name is taken, where a rename would silently replace the file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise NameTaken(path) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP):
            raise
        if path.exists():  # a file system without hard links (FAT): check, then rename
            raise NameTaken(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_new(path, write: Callable[[Path], None], *, fallback_suffix: str, flag: str = RESULTS_FLAG) -> Path:
    """atomic_write to `path`, or when a file has that name (another run of the same approach in the same
    second, in this or another process) to `<stem>_<fallback_suffix><ext>`; returns the name used."""
    path = Path(path)
    try:
        return atomic_write(path, write, flag=flag, replace=False)
    except NameTaken:
        return atomic_write(path.with_name(f"{path.stem}_{fallback_suffix}{path.suffix}"), write, flag=flag,
                            replace=False)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path, path: Path, flag: str = RESULTS_FLAG) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some file systems cannot fsync a folder; the data is written
            raise storage_error(exc, path, "write", flag) from exc


def _make_folder(folder: Path, flag: str = RESULTS_FLAG) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StorageError(f"{folder.absolute()} is a file, not a folder.",
                           hint=f"Move that file away, or pick another {flag}.") from None
    except OSError as exc:
        raise storage_error(exc, folder, "create the folder", flag) from exc
    return folder


def check_writable(folder, flag: str = RESULTS_FLAG) -> Path:
    """Create `folder` if needed and prove a file can be made in it (not a file, not read-only)."""
    folder = _make_folder(Path(folder), flag)
    probe = folder / f".write-check.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.remove(probe)
    except OSError as exc:
        raise storage_error(exc, folder / "files", "write", flag) from exc  # names the folder, not the probe
    return folder


def new_run_id() -> str:
    """Sorts by creation time; the random suffix keeps two runs started in the same second apart."""
    return f"{timestamp()}_{secrets.token_hex(3)}"


def run_suffix(run_id: str) -> str:
    """The random part of a run id: tells apart the files of two runs started in the same second."""
    return run_id.rsplit("_", 1)[-1]


def timestamp() -> str:
    return datetime.now().strftime(TIMESTAMP_FORMAT)


# --------------------------------------------------------------------------------------------- models

def export_model(learner, path, *, fallback_suffix: str = "") -> Path:
    """Export a fastai Learner for inference (`learner.export`) without ever leaving half a file.

    With `fallback_suffix`, an existing file is never replaced (see `write_new`). Returns the path written,
    relative if `path` was.
    """
    return _write_model(path, learner.export, fallback_suffix)


def save_baseline(saved, path, *, fallback_suffix: str) -> Path:
    """Pickle an engine.baselines.SavedBaseline, never leaving half a file nor replacing another run's."""
    def dump(temp: Path) -> None:
        with open(temp, "wb") as handle:
            pickle.dump(saved, handle, protocol=pickle.HIGHEST_PROTOCOL)

    return _write_model(path, dump, fallback_suffix)


def _write_model(path, write: Callable[[Path], None], fallback_suffix: str) -> Path:
    given = Path(path)
    path = given.absolute()  # fastai joins learner.path / fname; an absolute name wins
    _make_folder(path.parent, MODELS_FLAG)
    if fallback_suffix:
        written = write_new(path, write, fallback_suffix=fallback_suffix, flag=MODELS_FLAG)
    else:
        written = atomic_write(path, write, flag=MODELS_FLAG)
    return given.with_name(written.name)


def load_model(path, *, models_dir="models", allow_outside: bool = False):
    """Load a model vggtab saved: a fastai Learner export (on the CPU), or a pickled baseline
    (engine.baselines.SavedBaseline); both carry `vggtab`, the engine.model.ModelInfo.

    Unpickling runs code from the file, so by default only files inside `models_dir` are loaded.
    """
    from engine.warmup import warm_up

    warm_up()  # a background warm-up may be importing fastai right now
    from fastai.learner import Learner, load_learner

    path = Path(path)
    resolved, home = path.resolve(), Path(models_dir).resolve()
    if not allow_outside and not resolved.is_relative_to(home):
        raise StorageError(
            f"{path} is outside {models_dir}/: loading a model runs code stored in the file, so vggtab "
            f"only loads models from {models_dir}/.",
            hint="Move the file into that folder, or if you trust it, load it with --allow-outside-models.")
    if not resolved.is_file():
        raise StorageError(f"Model file {path} does not exist.", hint=f"Pick a .pkl file from {models_dir}/.")
    not_a_model = StorageError(f"{path} is not a vggtab model.",
                               hint="Pick a file that vggtab saved under models/ (a fastai export).")
    try:
        with open(resolved, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise storage_error(exc, resolved, "read", MODELS_FLAG) from exc
    if not magic.startswith(MODEL_MAGICS):
        raise not_a_model
    if magic.startswith(PICKLE_MAGIC):
        return _load_baseline(resolved, not_a_model)
    try:
        with warnings.catch_warnings():
            # fastai warns that unpickling runs code; the path check above is that warning's answer.
            warnings.simplefilter("ignore", UserWarning)
            learner = load_learner(resolved, cpu=True)
    # Anything unpickling can raise: the file is torn, foreign, or pickles classes that no longer exist.
    # (torch reports a torn archive as OSError EINVAL; the file itself was readable just above.)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, AttributeError, ImportError,
            NameError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise not_a_model from exc
    if not isinstance(learner, Learner):
        raise not_a_model
    return learner


def _load_baseline(path: Path, not_a_model: StorageError):
    from engine.baselines import SavedBaseline

    try:
        with open(path, "rb") as handle:
            saved = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, OSError, AttributeError, ImportError, NameError, KeyError,
            IndexError, TypeError, ValueError) as exc:
        raise not_a_model from exc
    if not isinstance(saved, SavedBaseline):
        raise not_a_model
    return saved


# -------------------------------------------------------------------------------------------- history

@dataclass(frozen=True)
class HistoryLoad:
    records: list[RunRecord]
    warnings: list[str]  # one per skipped line, naming its number


def history_path(results_dir) -> Path:
    return Path(results_dir) / HISTORY_FILE


@contextmanager
def _history_lock(results_dir: Path, mode: int):
    """flock on a separate lock file, so readers never see a line while a writer is adding it."""
    lock_path = results_dir / HISTORY_LOCK
    flags = os.O_RDWR | os.O_CREAT if mode == fcntl.LOCK_EX else os.O_RDONLY
    try:
        fd = os.open(lock_path, flags, 0o666)
    except FileNotFoundError:
        if mode == fcntl.LOCK_EX:
            raise
        yield  # a reader before any writer: nothing to wait for
        return
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def append_record(results_dir, record: RunRecord) -> Path:
    """Add one run to results/history.jsonl.

    Why a JSON-lines file and not SQLite: it is human-readable, greppable and diffable, and append-only
    means a crash can at worst tear the last line, which `load_history` skips. The exclusive lock makes
    concurrent writers (two app instances, an app and a CLI run) safe: each line goes out in one
    `os.write` on an O_APPEND descriptor and is fsynced before the lock is released.
    """
    results_dir = _make_folder(Path(results_dir))
    path = history_path(results_dir)
    line = (json.dumps(_strict_json({**asdict(record), "schema": SCHEMA}), ensure_ascii=False,
                       default=_json_default) + "\n").encode("utf-8")
    try:
        with _history_lock(results_dir, fcntl.LOCK_EX):
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
                _fsync_folder(results_dir, path)
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
    try:
        with _history_lock(results_dir, fcntl.LOCK_SH):
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


_RECORD_TYPES = typing.get_type_hints(RunRecord)


def record_from_row(row) -> RunRecord:
    """A RunRecord from one history row; ValueError saying what is wrong if it cannot be one."""
    if not isinstance(row, dict):
        raise ValueError(f"it holds a {type(row).__name__}, not a run")
    values = {}
    for f in fields(RunRecord):
        if f.name not in row:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ValueError(f"it has no {f.name!r} (a row from another version?)")
            continue
        hint = _RECORD_TYPES[f.name]
        value, expected = row[f.name], typing.get_origin(hint) or hint
        if expected is tuple and isinstance(value, list):
            item_type = typing.get_args(hint)[0]
            if not all(isinstance(item, item_type) for item in value):
                raise ValueError(f"its {f.name!r} holds items that are not {item_type.__name__}s")
            value = tuple(value)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool) and expected is not bool:
            raise ValueError(f"its {f.name!r} is {value!r}, not a {expected.__name__}")
        values[f.name] = value
    return RunRecord(**values)


# ----------------------------------------------------------------------------------------------- CSVs

def write_run_csvs(results_dir, record: RunRecord) -> tuple[Path, Path]:
    """The notebook's per-run files: `<approach>_results_<timestamp>.csv` (one row: the run's numbers)
    and `<approach>_history_<timestamp>.csv` (one row per epoch). Returns (results, history) paths."""
    results_dir = _make_folder(Path(results_dir))
    stem, stamp = safe_name(record.approach), _record_stamp(record)
    # Another run of this approach in the same second (in this or another process) may hold the name: the
    # results CSV takes the run id's suffix then, and the history CSV follows its name.
    results_path = write_new(results_dir / f"{stem}_results_{stamp}.csv",
                             _csv_writer(RESULTS_COLUMNS, [results_row(record, stamp)]),
                             fallback_suffix=run_suffix(record.run_id))
    epochs_path = results_path.with_name(results_path.name.replace(f"{stem}_results_", f"{stem}_history_", 1))
    epoch_columns = list(EPOCH_COLUMNS)
    for epoch in record.history:
        epoch_columns += [key for key in epoch if key not in epoch_columns]
    _write_csv(epochs_path, epoch_columns, record.history)
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
        "layers": _layers_text(config),
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


def _write_csv(path: Path, columns: Iterable[str], rows: Iterable[dict], flag: str = RESULTS_FLAG) -> None:
    atomic_write(path, _csv_writer(columns, rows), flag=flag)


def _csv_writer(columns: Iterable[str], rows: Iterable[dict]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return write


def safe_name(text: str) -> str:
    """An approach name usable in a file name: 'my run/v2' → 'my-run-v2'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def _record_stamp(record: RunRecord) -> str:
    try:
        return datetime.fromisoformat(record.created).strftime(TIMESTAMP_FORMAT)
    except ValueError:
        return timestamp()


def _layers_text(config: dict) -> str:
    if config.get("model", "mlp") != "mlp":
        return ""
    return "-".join(str(size) for size in config.get("layers", ()))


# ---------------------------------------------------------------------------------------- predictions

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
    """Validation-set predictions of one run, for paired tests and ensembles (results/predictions/)."""
    keys, probs, targets = np.asarray(keys, dtype=str), np.asarray(probs, dtype=float), np.asarray(targets)
    classes = np.asarray(classes, dtype=str)
    if probs.shape != (len(keys), len(classes)) or len(targets) != len(keys):
        raise ValueError(f"Need probs of shape (clips, classes) = ({len(keys)}, {len(classes)}) and one target "
                         f"per clip, got probs {probs.shape} and {len(targets)} targets.")
    path = predictions_path(results_dir, run_id)
    _make_folder(path.parent)

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


# --------------------------------------------------------------------------------------------- export

def table_row(record: RunRecord) -> dict:
    """One run as a row of the comparison table (numbers left as numbers)."""
    config, metrics = record.config, record.metrics
    return {
        "approach": record.approach,
        "features": config.get("features", ""),
        "layers": _layers_text(config) or config.get("model", ""),
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


def export_table(records: Iterable[RunRecord], path, fmt: str) -> Path:
    """Write the comparison table as "csv" (numbers as stored) or "markdown" (rounded for reading)."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Export format {fmt!r} is not known.", hint=f"Use one of {', '.join(EXPORT_FORMATS)}.")
    rows = [table_row(record) for record in records]
    path = Path(path)
    _make_folder(path.parent, EXPORT_FLAG)
    if fmt == "csv":
        _write_csv(path, TABLE_COLUMNS, rows, flag=EXPORT_FLAG)
    else:
        text = _markdown_table(rows)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), flag=EXPORT_FLAG)
    return path


def _markdown_table(rows: list[dict]) -> str:
    header = ("approach", "features", "layers", "lr", "epochs", "val accuracy", "95 % CI", "error rate",
              "lwlrap", "train s", "params", "created")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = (row["approach"], row["features"], row["layers"], _number(row["lr"], ".2g"),
                 _number(row["epochs"], "d"), _number(row["val_accuracy"], ".2%"),
                 _interval(row["ci_low"], row["ci_high"]),
                 _number(row["error_rate"], ".2%"), _number(row["lwlrap"], ".3f"), _number(row["train_seconds"], ".1f"),
                 _number(row["num_params"], ","), row["created"])
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _number(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _interval(low, high) -> str:
    return "" if low is None or high is None else f"{low:.1%}–{high:.1%}"
