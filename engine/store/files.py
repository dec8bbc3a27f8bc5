"""Writing files completely or not at all, making folders, and wording disk errors.

Every write goes to a hidden temp name in the target's folder, is fsynced and renamed over the target, and
the folder is fsynced so the rename itself survives a power cut (`atomic_write`).
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Callable

from engine.errors import StorageError

# The settings that pick where things go; messages name them as `setting=VALUE`, which each front end words.
RESULTS_DIR, MODELS_DIR = "results_dir", "models_dir"
TEMP_SUFFIX = ".tmp"  # a temp file never matches *.pkl / *.csv / *.npz


def pick_another(setting: str) -> str:
    """'pick another folder with results_dir=DIR': the fix for a place the user chose, by its setting."""
    return (f"pick another folder with {setting}=DIR" if setting.endswith("_dir")
            else f"pick another path with {setting}=PATH")


def storage_error(exc: OSError, path: Path, doing: str, setting: str = RESULTS_DIR) -> StorageError:
    """Turn an OSError into a message naming the folder and what the user can do about it."""
    folder = Path(path).parent.absolute()
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f"The disk holding {folder} is full: free some space, or {pick_another(setting)}."
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"Fix the permissions of {folder} (or mount it writable), or {pick_another(setting)}."
    elif exc.errno in (errno.ENOTDIR, errno.ENOENT):
        hint = f"{folder} is not a folder vggtab can use: {pick_another(setting)}."
    else:
        hint = f"Check the disk holding {folder}, or {pick_another(setting)}."
    return StorageError(f"Could not {doing} {Path(path).name} in {folder}: {reason}.", hint=hint)


class NameTaken(Exception):
    """`atomic_write(..., replace=False)` found a file already named so; nothing was written."""


def temp_name(path: Path) -> Path:
    """A unique hidden name beside `path` for a file being written."""
    return path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def atomic_write(path, write: Callable[[Path], None], *, setting: str = RESULTS_DIR, replace: bool = True,
                 durable: bool = True) -> Path:
    """Write `path` completely or not at all.

    `write(tmp)` fills a hidden temp file in the same folder; it is fsynced, renamed over `path` and the
    folder fsynced so the rename itself survives a power cut. If anything fails the temp file is removed
    and an existing `path` is left as it was. `write` must write to exactly the name it is given (pass
    numpy an open file: `np.savez` would add a suffix to a bare name). With `replace=False` an existing
    `path` is never overwritten, even by another process writing the same name at the same moment: NameTaken.
    OSErrors become StorageErrors naming the folder and the `setting` that chose it. `durable=False` skips
    the fsyncs, for files that only save time (a cache a power cut may lose, and that is checked when read).
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise storage_error(exc, path, "write", setting) from exc
    try:
        write(tmp)
        if durable:
            fsync_file(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            _rename_unless_taken(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise storage_error(exc, path, "write", setting) from exc
        raise
    if durable:
        fsync_folder(path, setting)
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


def write_new(path, write: Callable[[Path], None], *, fallback_suffix: str, setting: str = RESULTS_DIR) -> Path:
    """atomic_write to `path`, or when a file has that name (another run of the same approach in the same
    second, in this or another process) to `<stem>_<fallback_suffix><ext>`; returns the name used."""
    path = Path(path)
    try:
        return atomic_write(path, write, setting=setting, replace=False)
    except NameTaken:
        return atomic_write(path.with_name(f"{path.stem}_{fallback_suffix}{path.suffix}"), write, setting=setting,
                            replace=False)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: Path, setting: str = RESULTS_DIR) -> None:
    """Make the creation or renaming of `path` durable."""
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # some file systems cannot fsync a folder; the data is written
            raise storage_error(exc, path, "write", setting) from exc


def make_folder(folder, setting: str = RESULTS_DIR) -> Path:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StorageError(f"{folder.absolute()} is a file, not a folder.",
                           hint=f"Move that file away, or {pick_another(setting)}.") from None
    except OSError as exc:
        raise storage_error(exc, folder, "create the folder", setting) from exc
    return folder


def check_writable(folder, setting: str = RESULTS_DIR) -> Path:
    """Create `folder` if needed and prove a file can be made in it (not a file, not read-only)."""
    folder = make_folder(folder, setting)
    probe = temp_name(folder / ".write-check")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.remove(probe)
    except OSError as exc:
        raise storage_error(exc, folder / "files", "write", setting) from exc  # names the folder, not the probe
    return folder
