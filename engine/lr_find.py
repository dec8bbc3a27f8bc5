"""LR finder: fastai's `lr_find` with all four suggestions, returning the curve instead of plotting it."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from fastai.callback.schedule import minimum, slide, steep, valley
from fastai.learner import Learner

from engine.events import LRFinderReady

FALLBACK_LR = 1e-3


def find_lr(learner: Learner, *, num_it: int = 100) -> LRFinderReady:
    """Run the mock training; the learner's weights are restored afterwards by fastai."""
    with tempfile.TemporaryDirectory(prefix="vggtab-lrfind-") as scratch:
        learner.path = Path(scratch)  # fastai checkpoints here during the sweep
        with learner.no_logging():
            found = learner.lr_find(num_it=num_it, show_plot=False, suggest_funcs=(valley, slide, minimum, steep))
    recorder = learner.recorder
    points = [(float(lr), float(loss)) for lr, loss in zip(recorder.lrs, recorder.losses)]
    points = [(lr, loss) for lr, loss in points if math.isfinite(loss)]
    # Three significant digits: the curve is no more precise than that, and float32 noise such as
    # 0.0010000000474974513 would otherwise reach the results table, the CSVs and the approach names.
    suggestions = {name: float(f"{float(value):.3g}") for name, value in found._asdict().items()
                   if value is not None and math.isfinite(float(value)) and float(value) > 0}
    return LRFinderReady(lrs=tuple(p[0] for p in points), losses=tuple(p[1] for p in points),
                         suggestions=suggestions)


def pick_lr(found: LRFinderReady, preferred: str) -> tuple[float, str]:
    """The preferred suggestion, else the first usable one, else a safe default; returns (lr, source)."""
    if preferred in found.suggestions:
        return found.suggestions[preferred], f"LR finder ({preferred})"
    for name, value in found.suggestions.items():
        return value, f"LR finder ({name}; {preferred} was not usable)"
    return FALLBACK_LR, f"default {FALLBACK_LR:g} (the LR finder gave no usable suggestion)"
