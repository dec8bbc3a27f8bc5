import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import label_ranking_average_precision_score

from engine.stats import McNemar, lwlrap, mcnemar_exact, mean_sd, paired_verdict, per_class_lwlrap, wilson_interval


def wilson_closed_form(correct, n, z=1.959964):
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_8_of_10_matches_the_closed_formula_and_published_values():
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx(wilson_closed_form(8, 10), abs=1e-12)
    assert (low, high) == pytest.approx((0.4901625, 0.9433178), abs=1e-7)


def test_wilson_at_the_edges_stays_inside_zero_one():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775328), abs=1e-7)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10) == pytest.approx((0.7224672, 1.0), abs=1e-7)
    assert wilson_interval(10, 10)[1] == 1.0


@pytest.mark.parametrize("correct, n", [(-1, 10), (11, 10), (0, 0)])
def test_wilson_rejects_impossible_counts(correct, n):
    with pytest.raises(ValueError):
        wilson_interval(correct, n)


def aligned(a_only, b_only, both=3, neither=2):
    a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return a, b


def test_mcnemar_exact_one_against_six_is_0_125():
    m = mcnemar_exact(*aligned(1, 6))
    assert (m.a_only, m.b_only) == (1, 6)
    assert m.p_value == pytest.approx(0.125, abs=1e-12)


def test_mcnemar_equal_counts_and_no_discordant_clips_give_one():
    assert mcnemar_exact(*aligned(5, 5)).p_value == 1.0
    assert mcnemar_exact(*aligned(0, 0)).p_value == 1.0


def test_mcnemar_rejects_misaligned_arrays():
    with pytest.raises(ValueError):
        mcnemar_exact([True, False], [True])


def test_paired_verdict_reads_as_plain_words():
    m = mcnemar_exact(*aligned(5, 14))
    assert m.p_value == pytest.approx(0.0635681, abs=1e-7)
    assert paired_verdict(m, "A", "B") == (
        "B is better than A: 14 clips vs 5 (p = 0.06) — within noise at the 5 % level")


def test_paired_verdict_names_a_real_difference_and_the_winner_first():
    m = mcnemar_exact(*aligned(20, 2))
    assert m.p_value < 0.001
    assert paired_verdict(m, "emb", "both") == (
        "emb is better than both: 20 clips vs 2 (p < 0.001) — a real difference at the 5 % level")


def test_paired_verdict_on_ties():
    assert "tie" in paired_verdict(McNemar(1, 1, 1.0), "A", "B")
    assert "1 clip the other misses" in paired_verdict(McNemar(1, 1, 1.0), "A", "B")
    assert "same clips" in paired_verdict(McNemar(0, 0, 1.0), "A", "B")


def test_lwlrap_hand_computed_case_weights_labels_not_clips():
    truth = [[1, 0, 0],
             [1, 1, 1]]
    scores = [[0.1, 0.9, 0.8],  # the one positive is ranked 3rd: precision 1/3
              [0.3, 0.2, 0.1]]  # every class positive: precision 1 each
    per_class, weights = per_class_lwlrap(truth, scores)
    assert per_class == pytest.approx([(1 / 3 + 1) / 2, 1, 1])
    assert weights == pytest.approx([0.5, 0.25, 0.25])
    # Four positive labels, each weighted equally: (1/3 + 1 + 1 + 1) / 4.
    assert lwlrap(truth, scores) == pytest.approx(5 / 6)
    # Per-clip averaging (sklearn's LRAP) gives (1/3 + 1) / 2 instead: the weighting matters.
    assert label_ranking_average_precision_score(truth, scores) == pytest.approx(2 / 3)


def test_lwlrap_precision_counts_positives_ranked_above():
    # Positives at ranks 1 and 3: precisions 1/1 and 2/3.
    assert lwlrap([[1, 0, 1]], [[0.9, 0.8, 0.1]]) == pytest.approx((1 + 2 / 3) / 2)


def test_lwlrap_equals_sklearn_lrap_with_one_label_per_clip():
    rng = np.random.default_rng(0)
    n_clips, n_classes = 60, 7
    truth = np.zeros((n_clips, n_classes), dtype=bool)
    truth[np.arange(n_clips), rng.integers(0, n_classes, n_clips)] = True
    scores = rng.random((n_clips, n_classes))
    assert lwlrap(truth, scores) == pytest.approx(label_ranking_average_precision_score(truth, scores))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 6), st.integers(0, 10_000))
def test_lwlrap_is_one_exactly_when_positives_outrank_negatives(n_clips, n_classes, seed):
    rng = np.random.default_rng(seed)
    truth = rng.random((n_clips, n_classes)) < 0.4
    truth[0, 0] = True
    perfect = truth + rng.random((n_clips, n_classes)) * 0.5
    assert lwlrap(truth, perfect) == pytest.approx(1.0)
    per_class, weights = per_class_lwlrap(truth, rng.random((n_clips, n_classes)))
    assert weights.sum() == pytest.approx(1.0)
    assert np.all((per_class >= 0) & (per_class <= 1))


def test_lwlrap_rejects_mismatched_shapes_and_no_positives():
    with pytest.raises(ValueError):
        lwlrap([[1, 0]], [[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError):
        lwlrap([[0, 0]], [[0.1, 0.2]])


def test_mean_sd_uses_the_sample_standard_deviation():
    assert mean_sd([0.70, 0.72, 0.74, 0.76]) == pytest.approx((0.73, 0.0258199), abs=1e-7)
    assert mean_sd([0.8]) == (0.8, 0.0)
    with pytest.raises(ValueError):
        mean_sd([])
