"""Evaluation: accuracy with its interval, baselines, per-class accuracy, confusions and a plain-words diagnosis.

Accuracy means "the top-scored class is one of the clip's labels" in both label modes (for a single-label
clip: top-1 accuracy), the same per epoch, per class and at the end. Ranking metrics (lwlrap, mean average
precision) are reported for both modes.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from engine.stats import lwlrap, wilson_interval

OVERFIT_GAP = 0.15  # train − valid accuracy above this reads as overfitting
NEAR_RANDOM = 2.0  # accuracy below this multiple of random reads as "did not learn"
# Divergence without NaN, judged against the loss of guessing uniformly ("chance": ln(classes), or ln 2 per class
# for multi-label): a train loss that climbs this many times above its lowest point or above chance …
TRAIN_LOSS_RISE = 3.0
# … or a valid loss this many times above chance (overfitting raises valid loss, but not this far).
VALID_LOSS_EXPLODED = 10.0


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    error_rate: float
    ci_low: float
    ci_high: float
    n_valid: int
    random_baseline: float
    majority_baseline: float
    improvement_over_random: float
    train_accuracy: float
    lwlrap: float
    per_class_accuracy: dict[str, float]  # class → accuracy on the valid clips labelled with it
    confused_pairs: list[tuple[str, str, int]]  # (true, predicted, count), most frequent first
    misclassified: list[tuple[str, str, str, float]]  # (fname, true, predicted, confidence)
    diagnosis: list[str]
    mean_average_precision: float = 0.0  # over the classes with a valid clip

    def metrics(self) -> dict:
        return dict(val_accuracy=self.accuracy, error_rate=self.error_rate, ci_low=self.ci_low,
                    ci_high=self.ci_high, train_accuracy=self.train_accuracy, random_baseline=self.random_baseline,
                    majority_baseline=self.majority_baseline, lwlrap=self.lwlrap,
                    mean_average_precision=self.mean_average_precision)


def one_hot(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Class indices → 0/1 matrix; a 0/1 matrix (multi-label) passes through."""
    if targets.ndim == 2:
        return targets > 0.5
    truth = np.zeros((len(targets), n_classes), bool)
    truth[np.arange(len(targets)), targets] = True
    return truth


def correct_per_clip(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Single-label: top-1 hit. Multi-label: the top-scored class is one of the clip's labels."""
    top = probs.argmax(axis=1)
    if targets.ndim == 2:
        return targets[np.arange(len(top)), top] > 0.5
    return top == targets


def evaluate(valid_probs: np.ndarray, valid_targets: np.ndarray, train_probs: np.ndarray,
             train_targets: np.ndarray, *, classes: tuple[str, ...], valid_keys: np.ndarray,
             samples: int = 10, model: str = "mlp", history=(), lr: float | None = None) -> Evaluation:
    """Scores of one run; `model` (mlp, logreg, linear_svm, random_forest) picks the advice in the diagnosis, and
    the per-epoch `history` of a network trained at `lr` tells whether it diverged."""
    n_classes = len(classes)
    correct = correct_per_clip(valid_probs, valid_targets)
    n_valid = len(correct)
    accuracy = float(correct.mean()) if n_valid else 0.0
    ci_low, ci_high = wilson_interval(int(correct.sum()), n_valid)
    train_accuracy = float(correct_per_clip(train_probs, train_targets).mean()) if len(train_probs) else 0.0
    train_truth, valid_truth = one_hot(train_targets, n_classes), one_hot(valid_targets, n_classes)
    # The chance that a class drawn at random is one of the clip's labels: 1 / classes for single-label clips.
    random_baseline = float(valid_truth.sum(axis=1).mean()) / n_classes if n_valid else 1.0 / n_classes
    majority = int(train_truth.sum(axis=0).argmax())
    majority_baseline = float(valid_truth[:, majority].mean()) if n_valid else 0.0

    predicted = valid_probs.argmax(axis=1)
    true_first = valid_truth.argmax(axis=1)  # a multi-label clip's first label stands for it in confusions
    per_class_accuracy = {classes[c]: float(correct[valid_truth[:, c]].mean())
                          for c in range(n_classes) if valid_truth[:, c].any()}
    wrong = np.flatnonzero(~correct)
    pairs = Counter((classes[true_first[i]], classes[predicted[i]]) for i in wrong)
    confidence = valid_probs[np.arange(n_valid), predicted]
    most_confident_errors = wrong[np.argsort(-confidence[wrong])][:samples]
    misclassified = [(str(valid_keys[i]), classes[true_first[i]], classes[predicted[i]], float(confidence[i]))
                     for i in most_confident_errors]
    return Evaluation(
        accuracy=accuracy, error_rate=1 - accuracy, ci_low=ci_low, ci_high=ci_high, n_valid=n_valid,
        random_baseline=random_baseline, majority_baseline=majority_baseline,
        improvement_over_random=accuracy / random_baseline, train_accuracy=train_accuracy,
        lwlrap=lwlrap(valid_truth, valid_probs) if n_valid else 0.0, per_class_accuracy=per_class_accuracy,
        confused_pairs=[(t, p, n) for (t, p), n in pairs.most_common(samples)], misclassified=misclassified,
        diagnosis=diagnose(accuracy, train_accuracy, random_baseline, majority_baseline, model=model,
                           divergence=divergence(history, lr, chance_loss(n_classes, valid_targets.ndim == 2))),
        mean_average_precision=mean_average_precision(valid_truth, valid_probs))


def mean_average_precision(truth: np.ndarray, probs: np.ndarray) -> float:
    """Average precision per class (scikit-learn's, no interpolation), averaged over classes with a positive."""
    present = truth.any(axis=0)
    if not present.any():
        return 0.0
    from sklearn.metrics import average_precision_score  # on use: ~1.5 s to import

    return float(average_precision_score(truth[:, present], probs[:, present], average="macro"))


# What to try, per model: the MLP's knobs (LR, dropout, weight decay, epochs) mean nothing to a baseline.
LINEAR_BARELY_LEARNED = ("The classes may not be linearly separable in these features: try the MLP or another "
                         "feature set.")
LINEAR_OVERFIT = "Try fewer features (top-K / PCA) or a smaller feature set."
BARELY_LEARNED_ADVICE = {
    "mlp": "If the LR is below 1e-4, raise it (run the LR finder and take 'valley'); if losses grew, lower it.",
    "logreg": LINEAR_BARELY_LEARNED,
    "linear_svm": LINEAR_BARELY_LEARNED,
    "random_forest": "Check the labels and the feature set; try logistic regression or the MLP.",
}
OVERFIT_ADVICE = {
    "mlp": "Try dropout ps 0.5, more weight decay (wd 0.1), fewer epochs, or fewer features (top-K / PCA).",
    "logreg": LINEAR_OVERFIT,
    "linear_svm": LINEAR_OVERFIT,
}


BARELY_LEARNED, OVERFITTING = "barely learned", "overfitting"


def findings(accuracy: float, train_accuracy: float, random_baseline: float, majority_baseline: float, *,
             model: str = "mlp") -> tuple[str, ...]:
    """What the diagnosis found (BARELY_LEARNED, OVERFITTING): its notes and the advice check both start here."""
    found = []
    if accuracy < NEAR_RANDOM * random_baseline or accuracy <= majority_baseline:
        found.append(BARELY_LEARNED)
    # A random forest fits its train rows almost perfectly by construction: the gap says nothing there.
    if train_accuracy - accuracy > OVERFIT_GAP and model in OVERFIT_ADVICE:
        found.append(OVERFITTING)
    return tuple(found)


def chance_loss(n_classes: int, multi_label: bool) -> float:
    """The loss of predicting every class alike: cross-entropy ln(classes), or binary cross-entropy ln 2."""
    return math.log(2) if multi_label else math.log(max(n_classes, 2))


def divergence(history, lr: float | None, chance: float) -> str:
    """'Diverged at LR …' when the losses climbed far above where they were or above chance, else ''. A loss that
    became NaN stops training earlier (engine.train); this catches the runs that blew up and stayed finite."""
    train = [row["train_loss"] for row in history]
    valid = [row["valid_loss"] for row in history]
    if not train:
        return ""
    low, peak = min(train), max(train)
    found = []
    if peak > TRAIN_LOSS_RISE * min(low, chance) and peak > chance:
        rose = train.index(peak) > train.index(low)
        found.append(f"the train loss rose from {_loss(low)} to {_loss(peak)}" if rose
                     else f"the train loss was {_loss(peak)}")
    if max(valid) > VALID_LOSS_EXPLODED * chance:
        found.append(f"the valid loss reached {_loss(max(valid))}")
    if not found:
        return ""
    at = f" at LR {lr:.3g}" if lr is not None else ""
    lower = f", or ten times lower ({lr / 10:.2g})" if lr is not None else ""
    return (f"Diverged{at}: {' and '.join(found)}, against {chance:.2f} for guessing every class alike. Lower the "
            f"LR, e.g. to the LR finder's valley{lower}; more weight decay (wd) also damps it.")


def _loss(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def diagnose(accuracy: float, train_accuracy: float, random_baseline: float, majority_baseline: float, *,
             model: str = "mlp", divergence: str = "") -> list[str]:
    """Plain-words verdicts; a diverged run gets that verdict alone (its accuracy says nothing about the LR)."""
    if divergence:
        return [divergence]
    notes = []
    found = findings(accuracy, train_accuracy, random_baseline, majority_baseline, model=model)
    if BARELY_LEARNED in found:
        notes.append(f"Accuracy {accuracy:.1%} is near the random ({random_baseline:.1%}) or majority-class "
                     f"({majority_baseline:.1%}) baseline: the model barely learned. "
                     + BARELY_LEARNED_ADVICE.get(model, BARELY_LEARNED_ADVICE["mlp"]))
    gap = train_accuracy - accuracy
    if OVERFITTING in found:
        notes.append(f"Train accuracy {train_accuracy:.1%} is {gap:.0%} above valid: overfitting. "
                     + OVERFIT_ADVICE[model])
    if not notes:
        notes.append(f"Healthy: {accuracy / random_baseline:.0f}× random, train-valid gap {gap:.0%}.")
    return notes
