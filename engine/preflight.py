"""Pre-flight: every check that could otherwise fail only after training, run before the first epoch.

A run that trains for minutes and then cannot name, save or record its results leaves orphaned files and no
history line; these checks refuse it in milliseconds instead, naming the setting or the path and the fix.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path

from engine.config import RunConfig
from engine.errors import ConfigError, StorageError
from engine.store.files import MODELS_DIR, TEMP_SUFFIX, check_writable
from engine.store.history import HISTORY_LOCK, history_path
from engine.store.names import TIMESTAMP_FORMAT, safe_name

# The longest file a run writes is `.<approach>_history_<stamp>_<run suffix>.csv.<8 hex><TEMP_SUFFIX>` (the
# temporary name of its epoch CSV while it is written); everything but the approach is this long.
NAME_OVERHEAD = (len("._history_") + len(datetime(2000, 1, 1).strftime(TIMESTAMP_FORMAT)) + len("_abcdef")
                 + len(".csv.") + 8 + len(TEMP_SUFFIX))
# Training holds each parameter four times in float32 (weights, gradients, Adam's two moments) and a bf16 copy.
BYTES_PER_PARAMETER = 4 * 4 + 2
# fastai's export pickles the weights with the learner: room for twice their size is a safe margin.
EXPORT_BYTES_PER_PARAMETER = 8


def check_before_fit(config: RunConfig, n_inputs: int, n_classes: int, *, results_dir: Path,
                     models_dir: Path | None) -> None:
    """Raise now what saving and recording the run would raise after its fit. `models_dir` is None for a run
    that saves no model (a random forest)."""
    check_history_file(results_dir)
    check_writable(results_dir)
    check_name_length(config, [results_dir] + ([models_dir] if models_dir else []))
    if models_dir is not None:
        check_writable(models_dir, MODELS_DIR)
    if config.model == "mlp":
        parameters = mlp_parameters(n_inputs, config.layers, n_classes)
        check_memory(config, n_inputs, parameters)
        if models_dir is not None:
            check_disk_room(models_dir, parameters * EXPORT_BYTES_PER_PARAMETER)


def check_history_file(results_dir: Path) -> None:
    """The history and its lock file must be files (or not exist yet): a folder in their place is found only when
    the finished run is appended, after all its epochs."""
    history = history_path(results_dir)
    for path, what in ((history, "the run history cannot be appended to"),
                       (history.with_name(HISTORY_LOCK), "the run history cannot be locked for appending")):
        if path.exists() and not path.is_file():
            raise StorageError(f"{path} is not a file (a folder or a device): {what}.",
                               hint=f"Move {path} aside, or pick another `results_dir`.")


def check_name_length(config: RunConfig, folders: list[Path]) -> None:
    """The approach names the run's files; each must fit the file system's limit on a name (255 bytes on most)."""
    stem = safe_name(config.approach)
    limit = min(name_max(folder) for folder in folders)
    room = limit - NAME_OVERHEAD
    if len(stem.encode()) > room:
        raise ConfigError(f"The approach name is {len(stem.encode())} bytes long: the files named after it would "
                          f"pass the file system's {limit}-byte limit on a file name.",
                          hint=f"Give a shorter name= (at most {room} characters).")


def name_max(folder: Path) -> int:
    existing = next((p for p in [Path(folder), *Path(folder).absolute().parents] if p.exists()), Path("/"))
    try:
        return os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not on this OS or this file system: the common limit
        return 255


def mlp_parameters(n_inputs: int, layers: tuple[int, ...], n_classes: int) -> int:
    """fastai's TabularModel: input BatchNorm, then per layer a Linear without bias and a BatchNorm, then the
    output Linear."""
    sizes = [n_inputs, *layers]
    hidden = sum(a * b + 2 * b for a, b in zip(sizes, sizes[1:]))
    return 2 * n_inputs + hidden + sizes[-1] * n_classes + n_classes


def check_memory(config: RunConfig, n_inputs: int, parameters: int) -> None:
    needed = parameters * BYTES_PER_PARAMETER
    available = available_memory()
    if available is not None and needed > available:
        raise ConfigError(f"Layers {','.join(map(str, config.layers))} on {n_inputs:,} inputs make "
                          f"{parameters:,} parameters: training needs about {gib(needed)}, and this machine has "
                          f"{gib(available)} available.",
                          hint="Use smaller layers=, e.g. 200,100 (the notebook's) or 512,256,128,64.")


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_disk_room(models_dir: Path, needed: int) -> None:
    free = shutil.disk_usage(models_dir).free
    if needed > free:
        raise StorageError(f"{models_dir} has {gib(free)} free; the model of this run takes about {gib(needed)}.",
                           hint="Free some disk space, or pick another `models_dir`.")


def gib(size: int) -> str:
    return f"{size / 2**30:,.1f} GiB" if size >= 2**28 else f"{size / 2**20:,.0f} MiB"

