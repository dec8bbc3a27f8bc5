"""Saved models under models/: fastai Learner exports and pickled scikit-learn baselines.

fastai is imported only by the functions that need it.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Callable

from engine.errors import StorageError
from engine.store.files import MODELS_DIR, atomic_write, make_folder, storage_error, write_new

# A fastai export is torch.save's zip archive; a bare pickle (protocol 2+) is a saved baseline.
ZIP_MAGIC, PICKLE_MAGIC = b"PK\x03\x04", b"\x80"
MODEL_MAGICS = (ZIP_MAGIC, PICKLE_MAGIC)


def export_model(learner, path, *, fallback_suffix: str = "") -> Path:
    """Export a fastai Learner for inference (`learner.export`) without ever leaving half a file.

    With `fallback_suffix`, an existing file is never replaced (see `files.write_new`). Returns the path
    written, relative if `path` was.
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
    make_folder(path.parent, MODELS_DIR)
    if fallback_suffix:
        written = write_new(path, write, fallback_suffix=fallback_suffix, setting=MODELS_DIR)
    else:
        written = atomic_write(path, write, setting=MODELS_DIR)
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
            hint="Move the file into that folder, or if you trust it, load it with allow_outside=true.")
    if not resolved.is_file():
        raise StorageError(f"Model file {path} does not exist.", hint=f"Pick a .pkl file from {models_dir}/.")
    not_a_model = StorageError(f"{path} is not a vggtab model.",
                               hint="Pick a file that vggtab saved under models/ (a fastai export).")
    try:
        with open(resolved, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise storage_error(exc, resolved, "read", MODELS_DIR) from exc
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
