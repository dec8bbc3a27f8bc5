"""The heavy imports (scikit-learn, fastai, torch: ≈4.5 s), done once, ahead of need.

Callers start `warm_up` in a background thread while the CSVs load or the UI paints; every step that needs those
libraries calls it again first and so waits for that thread. Two threads importing one package at once can
fail with "partially initialized module" (scikit-learn's imports are circular), hence the lock.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_done = threading.Event()


def warm_up() -> None:
    with _lock:
        if _done.is_set():
            return
        import sklearn.model_selection  # noqa: F401  (the import is the work; the split needs it first)
        import engine.model  # noqa: F401  (fastai and torch)
        # The imports leave ~330k long-lived objects; full collections over them held the GIL for up to 0.9 s
        # during training (bench/bench_app.py). Freezing them keeps UI stalls under ~0.2 s. No gc.collect()
        # first: it took 0.19 s and found no garbage.
        gc.freeze()
        _done.set()


def is_warm() -> bool:
    return _done.is_set()
