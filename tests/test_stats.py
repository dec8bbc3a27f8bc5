import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import label_ranking_average_precision_score

from engine.stats import McNemar, lwlrap, mcnemar, mean_sd, paired_verdict, per_class_lwlrap, wilson_interval


# Returned by the hand-written implementations these replaced (closed-form Wilson with z = 1.959964, exact
# McNemar in integer arithmetic), computed before they were deleted.
OLD_WILSON = {(8, 10): (0.4901624691221323, 0.9433178490622331), (0, 10): (0.0, 0.2775328030260577),
              (10, 10): (0.7224671969739421, 1.0), (1, 1): (0.2065493117918027, 1.0),
              (347, 520): (0.6257131501509928, 0.7064484171514319),
              (2599, 2602): (0.996615494591967, 0.9996078140641471)}
OLD_MCNEMAR_EXACT = {(1, 6): 0.125, (5, 14): 0.063568115234375, (2, 20): 0.00012111663818359375,
                     (40, 60): 0.05688793364098079, (123, 177): 0.002161138741240762, (5, 5): 1.0, (0, 0): 1.0}


@pytest.mark.parametrize("correct, n", OLD_WILSON)
def test_wilson_equals_the_former_closed_form(correct, n):
    # the former z was rounded to 7 digits: the bounds move by ~3e-9
    assert wilson_interval(correct, n) == pytest.approx(OLD_WILSON[correct, n], abs=1e-8)


def test_wilson_matches_newcombes_published_table():
    # Newcombe (1998), Statistics in Medicine 17:857, worked examples of the score (Wilson) interval.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=5e-5)
    assert wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=5e-5)


def test_wilson_at_the_edges_stays_inside_zero_one():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0


@pytest.mark.parametrize("correct, n", [(-1, 10), (11, 10), (0, 0)])
def test_wilson_rejects_impossible_counts(correct, n):
    with pytest.raises(ValueError):
        wilson_interval(correct, n)


def aligned(a_only, b_only, both=3, neither=2):
    a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return a, b


@pytest.mark.parametrize("a_only, b_only", OLD_MCNEMAR_EXACT)
def test_mcnemar_exact_equals_the_former_integer_arithmetic(a_only, b_only):
    m = mcnemar(*aligned(a_only, b_only))
    assert (m.a_only, m.b_only) == (a_only, b_only)
    assert m.p_value == pytest.approx(OLD_MCNEMAR_EXACT[a_only, b_only], rel=1e-12)


def test_mcnemar_mid_p_matches_fagerland_lydersen_laake():
    # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91, worked example: 1 vs 7 discordant pairs.
    m = mcnemar(*aligned(1, 7))
    assert round(m.p_value, 3) == 0.070 and round(m.mid_p, 3) == 0.039
    # mid-p = exact p - P(X = 1) for X ~ binomial(8, 1/2): 18/256 - 8/256
    assert m.mid_p == pytest.approx(10 / 256, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 80), st.integers(0, 80))
def test_mcnemar_mid_p_is_below_the_exact_p_and_symmetric(a_only, b_only):
    m = mcnemar(*aligned(a_only, b_only))
    assert 0 < m.mid_p <= m.p_value <= 1
    if a_only + b_only:
        assert m.mid_p < m.p_value or a_only == b_only
    assert mcnemar(*aligned(b_only, a_only)).mid_p == m.mid_p


def test_mcnemar_ties_and_no_discordant_clips_give_one():
    assert mcnemar(*aligned(5, 5)) == McNemar(5, 5, 1.0, 1.0)
    assert mcnemar(*aligned(0, 0)) == McNemar(0, 0, 1.0, 1.0)


def test_mcnemar_rejects_misaligned_arrays():
    with pytest.raises(ValueError):
        mcnemar([True, False], [True])


def test_paired_verdict_reads_as_plain_words_and_judges_on_the_mid_p():
    m = mcnemar(*aligned(5, 14))
    # exact p 0.064 would say "within noise"; the mid-p is under 5 %
    assert m.p_value == pytest.approx(0.0635681, abs=1e-7) and m.mid_p == pytest.approx(0.0413895, abs=1e-7)
    assert paired_verdict(m, "A", "B") == (
        "B is better than A: 14 clips vs 5 (McNemar mid-p = 0.04) — a real difference at the 5 % level")
    assert paired_verdict(mcnemar(*aligned(5, 12)), "A", "B") == (
        "B is better than A: 12 clips vs 5 (McNemar mid-p = 0.1) — within noise at the 5 % level")


def test_paired_verdict_names_a_real_difference_and_the_winner_first():
    m = mcnemar(*aligned(20, 2))
    assert m.mid_p < 0.001
    assert paired_verdict(m, "emb", "both") == (
        "emb is better than both: 20 clips vs 2 (McNemar mid-p < 0.001) — a real difference at the 5 % level")


def test_paired_verdict_on_ties():
    assert "tie" in paired_verdict(McNemar(1, 1, 1.0, 1.0), "A", "B")
    assert "1 clip the other misses" in paired_verdict(McNemar(1, 1, 1.0, 1.0), "A", "B")
    assert "same clips" in paired_verdict(McNemar(0, 0, 1.0, 1.0), "A", "B")


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
