"""The calibrated bar and how it follows a sensor (``streamae/thresholds/rolling.py``)."""

import json
import math

import numpy as np
import pytest

from streamae.thresholds.quantile import QuantileThreshold
from streamae.thresholds.robust import RobustThreshold


def test_each_learned_score_moves_median_and_mad_one_step_by_hand():
    # normal scores 1 2 3 4 100: median 3, MAD 1, calibrated bar 3 + 2 · 1.4826,
    # which sits z = 2 · 1.4826 MADs above the median. window 8: steps of 4/8 = 0.5.
    threshold = RobustThreshold(window=8, k=2.0, normal_scores=[1, 2, 3, 4, 100])
    floor = 3 + 2 * 1.4826
    assert threshold.value() == pytest.approx(floor)
    z = 2 * 1.4826
    threshold.learn(10.0)  # above the median: 3 + 0.5 · MAD; 7 away: MAD · 1.5
    assert threshold.value() == pytest.approx(3.5 + z * 1.5)
    threshold.learn(3.5)  # at the median: it stays; 0 away: MAD · 0.5
    assert threshold.value() == pytest.approx(floor)  # 3.5 + z · 0.75 is below the floor


def test_never_drops_below_the_calibrated_bar():
    threshold = RobustThreshold(window=5, k=2.0, normal_scores=[1, 2, 3, 4, 100])
    warm = threshold.value()
    for _ in range(100):
        threshold.learn(0.5)
    assert threshold.value() == warm


def test_follows_a_sensor_whose_scores_grow_tenfold():
    rng = np.random.default_rng(0)
    normal = rng.lognormal(0.0, 0.5, 2000)
    threshold = QuantileThreshold(window=200, q=0.99, normal_scores=normal)
    warm = threshold.value()
    for score in 10 * rng.lognormal(0.0, 0.5, 2000):
        threshold.learn(float(score))
    assert threshold.value() == pytest.approx(10 * warm, rel=0.2)


def test_the_bar_scales_with_the_scores():
    rng = np.random.default_rng(1)
    normal, later = rng.random(300) + 0.1, rng.random(500) * 3
    small = RobustThreshold(window=50, normal_scores=normal)
    large = RobustThreshold(window=50, normal_scores=1000 * normal)
    for score in later:
        small.learn(float(score))
        large.learn(1000 * float(score))
    assert large.value() == pytest.approx(1000 * small.value())


def test_constant_and_zero_scores_keep_a_finite_bar():
    threshold = RobustThreshold(window=10, k=8.0, normal_scores=[2.0] * 20)
    assert threshold.value() == pytest.approx(2.0 + 8 * 0.02)
    for score in (0.0, 0.0, 1e-300, 2.0, 2.0):
        threshold.learn(score)
    # Each far-off score widens the MAD by one step (x 1.4 at window 10), no more.
    assert 2.0 + 8 * 0.02 <= threshold.value() < 2.5


def test_without_normal_scores_the_first_ten_calibrate_it():
    threshold = RobustThreshold(window=100)
    assert threshold.value() == math.inf
    for _ in range(9):
        threshold.learn(1.0)
    assert threshold.value() == math.inf
    threshold.learn(1.0)
    assert threshold.value() == pytest.approx(1.0 + 8 * 0.01)


def test_state_round_trip_continues_identically_and_stays_small():
    rng = np.random.default_rng(0)
    a = QuantileThreshold(window=2000, q=0.999, margin=1.1, normal_scores=rng.random(4000))
    for score in rng.random(33):
        a.learn(float(score) * 2)
    state = json.dumps(a.state())
    b = QuantileThreshold(window=2000, q=0.999, margin=1.1)
    b.restore(json.loads(state))
    assert b.value() == a.value()
    for score in rng.random(40) * 3:
        a.learn(float(score))
        b.learn(float(score))
        assert b.value() == a.value()
    assert len(state) < 250  # O(1): a handful of numbers, whatever the window


def test_restore_refuses_another_policy_and_the_old_buffer_format():
    with pytest.raises(ValueError, match="QuantileThreshold"):
        RobustThreshold(window=5).restore(QuantileThreshold(window=5).state())
    with pytest.raises(ValueError, match="older format"):
        RobustThreshold(window=5).restore({"kind": "RobustThreshold", "scores": ""})


def test_thresholds_keep_no_per_instance_dict():
    assert not hasattr(RobustThreshold(window=5), "__dict__")
    assert not hasattr(QuantileThreshold(window=5), "__dict__")


def test_copies_of_a_template_learn_independently():
    for normal in (None, [1.0, 2.0, 3.0, 4.0, 100.0]):
        template = RobustThreshold(window=8, k=2.0, normal_scores=normal)
        before = template.state()
        a, b = template.fresh(), template.fresh()
        for score in (1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 50.0):
            a.learn(score)
        b.learn(1.0)
        assert a.state() != b.state()
        assert template.state() == before


def test_tiny_windows_stay_finite():
    for window in (1, 2, 3):
        threshold = QuantileThreshold(window=window, q=0.9, normal_scores=[1.0, 2.0, 3.0])
        for score in (0.0, 5.0, 1e6, 2.0, 0.0) * 20:
            threshold.learn(score)
        assert math.isfinite(threshold.value())
        assert threshold.value() < 1e7
