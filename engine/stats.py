"""Statistics for reading results honestly: confidence intervals, paired tests, the FAT2019 metric."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959964  # two-sided 95 % normal quantile
SIGNIFICANCE = 0.05


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion `correct / n`; stays inside [0, 1] even at 0 or n."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"Need 0 <= correct <= n and n > 0, got correct={correct}, n={n}.")
    p = correct / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # At 0 or n the exact bound is 0 or 1; the formula lands a rounding error away from it.
    low = 0.0 if correct == 0 else max(0.0, centre - half_width)
    high = 1.0 if correct == n else min(1.0, centre + half_width)
    return low, high


@dataclass(frozen=True)
class McNemar:
    a_only: int  # clips A got right and B got wrong
    b_only: int  # clips B got right and A got wrong
    p_value: float


def mcnemar_exact(a_correct, b_correct) -> McNemar:
    """Exact McNemar test on two models' per-clip correctness (aligned arrays of bools).

    Only the discordant clips carry information; under "no difference" each is equally likely to
    favour A or B, so the p-value is the two-sided binomial(n, 1/2) tail.
    """
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"Need two aligned 1-D arrays, got shapes {a.shape} and {b.shape}.")
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    return McNemar(a_only, b_only, _binomial_two_sided(min(a_only, b_only), a_only + b_only))


def _binomial_two_sided(k: int, n: int) -> float:
    if n == 0:
        return 1.0
    # Exact integers: 2**n stays exact for any n, and int / int rounds once.
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def format_p(p: float) -> str:
    """'p = 0.06', 'p = 0.004', 'p < 0.001', 'p = 1': as many digits as a reader can use."""
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return "p = " + f"{p:.2f}".rstrip("0").rstrip(".")


def paired_verdict(m: McNemar, name_a: str, name_b: str) -> str:
    """One sentence a user can act on, e.g.
    "B is better than A: 14 clips vs 5 (p = 0.06) — within noise at the 5 % level"."""
    level = f"{SIGNIFICANCE:.0%}".replace("%", " %")
    noise = "within noise" if m.p_value >= SIGNIFICANCE else "a real difference"
    if m.a_only == m.b_only == 0:
        return f"{name_a} and {name_b} are right on exactly the same clips: no difference to test"
    if m.a_only == m.b_only:
        return (f"{name_a} and {name_b} tie: each is right on {_clips(m.a_only)} the other misses "
                f"({format_p(m.p_value)}) — {noise} at the {level} level")
    better, worse = (name_b, name_a) if m.b_only > m.a_only else (name_a, name_b)
    wins, losses = max(m.a_only, m.b_only), min(m.a_only, m.b_only)
    return (f"{better} is better than {worse}: {_clips(wins)} vs {losses} ({format_p(m.p_value)}) "
            f"— {noise} at the {level} level")


def _clips(count: int) -> str:
    return f"{count} clip" if count == 1 else f"{count} clips"


def per_class_lwlrap(truth, scores) -> tuple[np.ndarray, np.ndarray]:
    """Per-class label-ranking average precision and each class's weight (its share of positive labels).

    Freesound Audio Tagging 2019: for each positive label of each clip, the precision at its rank
    (positives ranked at or above it / its rank). Ties in scores are broken by class order.
    """
    truth = np.asarray(truth, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    if truth.shape != scores.shape or truth.ndim != 2:
        raise ValueError(f"Need truth and scores of the same (clips, classes) shape, got {truth.shape} "
                         f"and {scores.shape}.")
    labels_per_class = truth.sum(axis=0)
    if labels_per_class.sum() == 0:
        raise ValueError("lwlrap needs at least one positive label.")
    n_clips, n_classes = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.empty_like(order)  # 0-based rank of each class within its clip
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n_classes), (n_clips, n_classes)), axis=1)
    hits_by_rank = np.cumsum(np.take_along_axis(truth, order, axis=1), axis=1)
    hits_at_label = np.take_along_axis(hits_by_rank, rank, axis=1)
    precision = np.where(truth, hits_at_label / (rank + 1), 0.0)
    per_class = precision.sum(axis=0) / np.maximum(1, labels_per_class)
    weights = labels_per_class / labels_per_class.sum()
    return per_class, weights


def lwlrap(truth, scores) -> float:
    """Label-weighted label-ranking average precision: every positive label counts equally."""
    per_class, weights = per_class_lwlrap(truth, scores)
    return float(np.sum(per_class * weights))


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of k-fold scores; one value has SD 0."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        raise ValueError("mean_sd needs at least one value.")
    sd = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
    return float(np.mean(array)), sd
