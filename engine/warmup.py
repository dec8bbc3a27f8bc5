"""The heavy imports (scikit-learn, fastai, torch: ≈4.5 s), done once, ahead of need.

Callers start `warm_up` in a background thread while the CSVs load or the UI paints; a step that needs those
libraries calls `wait_for_scikit_learn` (the split and features steps) or `warm_up` (everything else) first, and
so waits for that thread instead of importing beside it: two threads importing one package at once can fail with
"partially initialized module" (scikit-learn's imports are circular), hence the lock.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_started = threading.Event()
_scikit_learn_ready = threading.Event()
_done = threading.Event()


def warm_up() -> None:
    with _lock:
        if _done.is_set():
            return
        _started.set()
        try:
            # The import is the work. First what preparing the data needs (pandas, pyarrow), which a launch from
            # the cache waits for: importing scikit-learn beside it would halve both. Then the split, then the
            # features step (the rest is ~0.2 s), need these.
            import engine.pipeline  # noqa: F401
            import sklearn.compose  # noqa: F401
            import sklearn.decomposition  # noqa: F401
            import sklearn.feature_selection  # noqa: F401
            import sklearn.impute  # noqa: F401
            import sklearn.model_selection  # noqa: F401
            import sklearn.pipeline  # noqa: F401
            _scikit_learn_ready.set()
            import engine.lr_find  # noqa: F401  (fastai and torch; every module a run imports, so that
            import engine.model  # noqa: F401   the freeze below covers their objects too)
            import engine.train  # noqa: F401
            # The imports leave ~330k long-lived objects; full collections over them held the GIL for up to
            # 0.9 s during training (bench/bench_app.py). Freezing them keeps UI stalls under ~0.2 s. No
            # gc.collect() first: it took 0.19 s and found no garbage.
            gc.freeze()
        except RuntimeError:
            # "can't register atexit after shutdown": the command ended (say, with a clean error) while this
            # thread still imported. Nothing is waiting for the imports any more.
            if threading.main_thread().is_alive():
                raise
        finally:  # on an import error too: the waiter's own import then raises it
            _scikit_learn_ready.set()
            _done.set()


def wait_for_scikit_learn() -> None:
    """Return once the scikit-learn modules of the split and features steps are imported; fastai and torch may
    still be importing."""
    if _scikit_learn_ready.is_set():
        return
    if _started.is_set():
        _scikit_learn_ready.wait()
    else:
        warm_up()


def is_warm() -> bool:
    return _done.is_set()


def is_importing() -> bool:
    """A warm-up is running now (in some thread)."""
    return _started.is_set() and not _done.is_set()
