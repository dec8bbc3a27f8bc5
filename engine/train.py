"""Training: `fit_one_cycle` with one small fastai Callback per concern: cancellation, the NaN guard, progress.

engine.model's learner dispatches each event only to the callbacks that handle it, so splitting concerns into
callbacks costs nothing per batch."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch
import fastai.callback.schedule  # noqa: F401  (patches Learner.fit_one_cycle)
from fastai.callback.core import Callback, CancelFitException
from fastai.learner import Learner

from engine.errors import Cancelled, TrainingDiverged
from engine.evaluate import correct_per_clip, one_hot
from engine.events import BatchEnded, EpochEnded, Reporter
from engine.stats import lwlrap


class CancelOnEvent(Callback):
    """Stops the fit before the next batch once `cancel` is set (from the app's worker or a signal handler)."""

    order = 0  # before BF16Compute (engine.model) enters autocast for the batch

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel

    def before_batch(self):
        if self.cancel.is_set():
            raise CancelFitException()


class StopOnNonFiniteLoss(Callback):
    """fastai's TerminateOnNaNCallback, with a diagnosis: stops at the first NaN/inf loss and says why."""

    order = 20  # after BF16Compute has left autocast for the batch

    def __init__(self, lr: float):
        self.lr = lr

    def after_loss(self):
        if not torch.isfinite(self.loss):
            where = f"epoch {self.epoch + 1}, batch {self.iter + 1}"
            raise TrainingDiverged(
                f"The loss became {float(self.loss)} at {where} with LR {self.lr:.3g}; training was stopped.",
                hint=diverged_hint(self.xb[1], self.lr))


class ProgressReport(Callback):
    """BatchEnded after each training batch; EpochEnded with the epoch's scores, which `history` keeps.

    Callbacks added after it (order > 60) read the epoch just scored as `self.learn.progress_report.history[-1]`
    in their after_epoch, e.g. a sweep's pruner."""

    order = 60  # after Recorder (50), whose epoch values this reads

    def __init__(self, report: Reporter):
        self.report = report
        self.history: list[dict] = []

    def before_fit(self):
        self.fit_start = time.perf_counter()

    def before_epoch(self):
        self.epoch_start = time.perf_counter()

    def before_validate(self):
        self.valid_logits: list[torch.Tensor] = []

    def after_batch(self):
        if not self.training:
            self.valid_logits.append(self.pred.detach())
        else:
            self.report(BatchEnded(epoch=self.epoch, n_epochs=self.n_epoch, batch=self.iter + 1,
                                   n_batches=self.n_iter, elapsed=time.perf_counter() - self.fit_start))

    def after_epoch(self):
        values = self.recorder.values[-1]
        accuracy, valid_lwlrap = self.valid_scores()
        row = dict(epoch=self.epoch + 1, train_loss=float(values[0]), valid_loss=float(values[1]),
                   accuracy=accuracy, error_rate=1 - accuracy, seconds=time.perf_counter() - self.epoch_start,
                   lwlrap=valid_lwlrap)
        self.history.append(row)
        self.report(EpochEnded(n_epochs=self.n_epoch, **row))

    def valid_scores(self) -> tuple[float, float]:
        """Valid accuracy and lwlrap as engine.evaluate defines them, so the last epoch matches the final metrics
        (fastai's accuracy_multi would count every thresholded class of a multi-label clip instead). Scored on
        the logits of fastai's own validation pass (they rank classes as the probabilities do): no second
        forward over the valid rows."""
        scores = torch.cat(self.valid_logits).float().numpy()
        targets = self.dls.valid.y.numpy()
        accuracy = float(correct_per_clip(scores, targets).mean())
        return accuracy, lwlrap(one_hot(targets, scores.shape[1]), scores)


def diverged_hint(x_batch: torch.Tensor, lr: float) -> str:
    if not torch.isfinite(x_batch).all():
        return ("This batch holds NaN/inf features, which the audit should have removed: rerun with bad rows "
                "dropped (the default) and check the dataset panel's dropped rows.")
    return (f"The inputs are finite, so the LR is the likely cause: run the LR finder and pick 'valley', or try "
            f"{lr / 10:.2g}.")


def fit(learner: Learner, *, epochs: int, lr: float, report: Reporter, cancel: threading.Event | None = None,
        callbacks: tuple[Callback, ...] = ()) -> list[dict]:
    """fit_one_cycle(epochs, lr); returns the per-epoch history. Raises TrainingDiverged or Cancelled.

    `callbacks` join this fit's own (cancel, NaN guard, progress); see ProgressReport for reading its scores."""
    cancel = cancel or threading.Event()
    progress = ProgressReport(report)
    with learner.no_logging():
        learner.fit_one_cycle(epochs, lr, cbs=[CancelOnEvent(cancel), StopOnNonFiniteLoss(lr), progress,
                                               *callbacks])
    if cancel.is_set():
        raise Cancelled(len(progress.history), progress.history)
    return progress.history


def check_finite_inputs(x: np.ndarray, keys: np.ndarray, where: str) -> None:
    """Defence in depth behind the audit: no NaN/inf feature may reach the model."""
    rows = [str(k) for k in keys[~np.isfinite(x).all(axis=1)][:5]]
    if rows:
        raise TrainingDiverged(f"The {where} features hold NaN/inf values in rows {', '.join(rows)}.",
                               hint="Drop those rows (bad_rows=drop) or impute them (bad_rows=impute).")

