"""NAB scoring, checked against values worked out by hand (and NAB's own tests)."""

import math

import pytest

from streamae.evaluation.nab import (
    PROFILES,
    NabScore,
    Profile,
    nab_events,
    nab_score,
    probationary_length,
    scaled_sigmoid,
)

STANDARD = PROFILES["standard"]


def tanh_score(x: float) -> float:
    """2·sigmoid(2x) - 1 = tanh(x): the hand form of NAB's scaled sigmoid."""
    return math.tanh(x)


def test_profiles_match_nab_config():
    # numenta/NAB config/profiles.json
    expected = {
        "standard": Profile(tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
        "reward_low_FP_rate": Profile(tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
        "reward_low_FN_rate": Profile(tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
    }
    assert dict(PROFILES) == expected


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (-1.0, 0.98661),  # the values in NAB's scaledSigmoid docstring
        (-0.5, 0.84828),
        (0.0, 0.0),
        (1.0, -0.98661),
        (3.0, -0.99999969),  # 2·sigmoid(-15) - 1, still on the curve
        (3.01, -1.0),  # beyond 3: flat -1
        (50.0, -1.0),
    ],
)
def test_scaled_sigmoid(position, expected):
    assert scaled_sigmoid(position) == pytest.approx(expected, abs=5e-6)


@pytest.mark.parametrize(
    ("rows", "expected"), [(100, 15), (40, 6), (4032, 604), (5000, 750), (22695, 750)]
)
def test_probationary_length_is_15_percent_capped_at_750(rows, expected):
    assert probationary_length(rows) == expected


# One series of 100 rows (probation = rows 0..14) with one window at rows 40..49.
ROWS = 100
WINDOW = [(40, 49)]


def standard(detections, windows=WINDOW, rows=ROWS) -> NabScore:
    return nab_score(nab_events(rows, windows, detections), STANDARD)


def test_perfect_detector_scores_100_and_null_detector_0():
    perfect = standard([40])
    null = standard([])
    assert (perfect.raw, perfect.null, perfect.perfect) == pytest.approx((1.0, -1.0, 1.0))
    assert perfect.normalised == pytest.approx(100.0)
    assert null.raw == pytest.approx(-1.0)
    assert null.normalised == pytest.approx(0.0)


def test_detection_halfway_into_the_window_by_hand():
    # Row 45: position -(49 - 45 + 1) / 10 = -0.5, so S = tanh(1.25) = 0.848284,
    # divided by S(-1) = tanh(2.5) = 0.986614 → 0.859792.
    score = standard([45])
    assert score.raw == pytest.approx(0.859792, abs=1e-6)
    assert score.raw == pytest.approx(tanh_score(1.25) / tanh_score(2.5))
    assert score.normalised == pytest.approx(100 * (0.859792 + 1) / 2, abs=1e-4)


def test_only_the_first_detection_in_a_window_counts():
    assert standard([45, 46, 48]).raw == pytest.approx(standard([45]).raw)
    assert standard([41, 45]).raw > standard([45]).raw


def test_false_positive_with_no_window_before_it_costs_the_fp_weight():
    # Row 20: after probation, before any window → -0.11, plus the missed window -1.
    assert standard([20]).raw == pytest.approx(-0.11 - 1.0)


def test_false_positive_after_a_window_is_scored_by_distance_past_it():
    # Row 52 after window 40..49: q = (52 - 49) / (10 - 1) = 1/3,
    # S(1/3) = -tanh(5/6) = -0.682262; weighted by 0.11 → -0.075049.
    events = nab_events(ROWS, WINDOW, [40, 52])
    assert events.fp_positions == pytest.approx((1 / 3,))
    score = nab_score(events, STANDARD)
    assert score.raw == pytest.approx(1.0 - 0.11 * 0.682262, abs=1e-6)
    # Far past the window (q > 3) it costs the full fp weight.
    assert standard([40, 90]).raw == pytest.approx(1.0 - 0.11)


def test_detections_in_the_probationary_period_are_ignored():
    assert standard([3, 14]).raw == pytest.approx(standard([]).raw)
    assert standard([15]).raw == pytest.approx(-1.0 - 0.11)  # row 15 is scored


def test_window_ending_in_probation_is_not_scored_but_counts_in_perfect():
    # Window 5..10 lies in probation: no FN for it (NAB gives it no window name),
    # but NAB's perfect score still counts every labelled window.
    events = nab_events(ROWS, [(5, 10), (40, 49)], [40])
    assert (events.windows, events.scored_windows, events.detected, events.missed) == (2, 1, 1, 0)
    score = nab_score(events, STANDARD)
    assert (score.raw, score.null, score.perfect) == pytest.approx((1.0, -1.0, 2.0))


def test_false_positive_after_probationary_window_uses_it_as_preceding_window():
    # Window 5..10 (width 6), detection at row 20: q = 10 / 5 = 2 → S(2) = -tanh(5).
    score = standard([20], windows=[(5, 10)])
    assert score.raw == pytest.approx(-0.11 * math.tanh(5))


def test_nab_scoring_all_metrics_example():
    # NAB tests/unit/scorer_test.py testScoringAllMetrics: 100 rows, windows at 30..34
    # and 65..69, no probation, all weights 1; detections at 30, 31 and 37 → -0.9540.
    events = nab_events(100, [(30, 34), (65, 69)], [30, 31, 37], probation_percent=0)
    score = nab_score(events, Profile(tp_weight=1.0, fp_weight=1.0, fn_weight=1.0))
    assert score.raw == pytest.approx(-0.9540, abs=1e-4)
    assert (events.detected, events.missed, events.false_alarms) == (1, 1, 1)


def test_profiles_weigh_outcomes_differently():
    with_fp = nab_events(ROWS, WINDOW, [45, 90])  # one TP, one far FP
    low_fp = nab_score(with_fp, PROFILES["reward_low_FP_rate"])
    std = nab_score(with_fp, STANDARD)
    assert std.raw - low_fp.raw == pytest.approx(0.11)  # FP costs 0.22 instead of 0.11
    assert low_fp.normalised < std.normalised

    missed = nab_events(ROWS, [(40, 49), (70, 79)], [45])  # one TP, one FN
    low_fn = nab_score(missed, PROFILES["reward_low_FN_rate"])
    std = nab_score(missed, STANDARD)
    tp = tanh_score(1.25) / tanh_score(2.5)
    assert std.raw == pytest.approx(tp - 1.0)
    assert low_fn.raw == pytest.approx(tp - 2.0)
    assert (low_fn.null, std.null) == (-4.0, -2.0)
    # Normalised: standard 100·(tp - 1 + 2)/4, low-FN 100·(tp - 2 + 4)/6.
    assert std.normalised == pytest.approx(100 * (tp + 1) / 4)
    assert low_fn.normalised == pytest.approx(100 * (tp + 2) / 6)


def test_one_row_window_followed_by_false_positive():
    # NAB divides by zero here; we use q = 2 like NAB's older scorer.py.
    score = standard([50], windows=[(40, 40)])
    assert score.raw == pytest.approx(-1.0 + 0.11 * scaled_sigmoid(2.0))


def test_scores_are_summed_before_normalising():
    a = standard([40])  # raw 1, null -1, perfect 1
    b = standard([], windows=[(40, 49), (60, 69)])  # raw -2, null -2, perfect 2
    total = a + b
    assert (total.raw, total.null, total.perfect) == pytest.approx((-1.0, -3.0, 3.0))
    assert total.normalised == pytest.approx(100 * 2 / 6)
    assert total.normalised != pytest.approx((a.normalised + b.normalised) / 2)


def test_no_windows_means_no_normalised_score():
    score = standard([20, 30], windows=[])
    assert score.raw == pytest.approx(-0.22)
    assert score.normalised is None


def test_windows_must_be_sorted_disjoint_and_inside():
    for windows in ([(10, 20), (15, 30)], [(30, 40), (10, 20)], [(90, 100)], [(5, 4)]):
        with pytest.raises(ValueError, match="windows"):
            nab_events(ROWS, windows, [])
