"""Statistics for reading results honestly: confidence intervals, paired tests, the FAT2019 metric."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIGNIFICANCE = 0.05
CONFIDENCE = 0.95


def wilson_interval(correct: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval for a proportion `correct / n`; stays inside [0, 1] even at 0 or n."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"Need 0 <= correct <= n and n > 0, got correct={correct}, n={n}.")
    from scipy.stats import binomtest  # on use: ~0.6 s to import

    interval = binomtest(correct, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


@dataclass(frozen=True)
class McNemar:
    a_only: int  # clips A got right and B got wrong
    b_only: int  # clips B got right and A got wrong
    p_value: float  # exact (conditional) test: conservative, its true size is below the nominal level
    mid_p: float  # exact p minus half the point probability on each side: what the verdict uses


def mcnemar(a_correct, b_correct) -> McNemar:
    """McNemar's test on two models' per-clip correctness (aligned arrays of bools), exact and mid-p.

    Only the discordant clips carry information; under "no difference" each is equally likely to favour
    A or B, so the exact p-value is the two-sided binomial(n, 1/2) tail. The mid-p variant counts the
    observed outcome's own probability half, which keeps the size close to the nominal level; Fagerland,
    Lydersen & Laake (2013, BMC Med Res Methodol 13:91) recommend it for paired binary data.
    """
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"Need two aligned 1-D arrays, got shapes {a.shape} and {b.shape}.")
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return McNemar(a_only, b_only, 1.0, 1.0)
    from scipy.stats import binom, binomtest  # on use: ~0.6 s to import

    # 2·P(X <= k) - P(X = k), from the uncapped tail: a tie (k = n/2) gives exactly 1, like the exact test.
    mid_p = 2 * binom.cdf(k, n, 0.5) - binom.pmf(k, n, 0.5)
    return McNemar(a_only, b_only, float(binomtest(k, n).pvalue), float(min(1.0, mid_p)))


def format_p(p: float) -> str:
    """'p = 0.06', 'p = 0.004', 'p < 0.001', 'p = 1': as many digits as a reader can use."""
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return "p = " + f"{p:.2f}".rstrip("0").rstrip(".")


def paired_verdict(m: McNemar, name_a: str, name_b: str) -> str:
    """One sentence a user can act on, judged on the mid-p, e.g.
    "B is better than A: 14 clips vs 5 (McNemar mid-p = 0.04) — a real difference at the 5 % level"."""
    level = f"{SIGNIFICANCE:.0%}".replace("%", " %")
    noise = "within noise" if m.mid_p >= SIGNIFICANCE else "a real difference"
    p = "McNemar mid-" + format_p(m.mid_p)
    if m.a_only == m.b_only == 0:
        return f"{name_a} and {name_b} are right on exactly the same clips: no difference to test"
    if m.a_only == m.b_only:
        return (f"{name_a} and {name_b} tie: each is right on {_clips(m.a_only)} the other misses "
                f"({p}) — {noise} at the {level} level")
    better, worse = (name_b, name_a) if m.b_only > m.a_only else (name_a, name_b)
    wins, losses = max(m.a_only, m.b_only), min(m.a_only, m.b_only)
    return (f"{better} is better than {worse}: {_clips(wins)} vs {losses} ({p}) "
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
