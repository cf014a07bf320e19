import json
import math

import numpy as np
import pytest

from streamae.thresholds.robust import RobustThreshold


def test_warm_start_value_is_median_plus_k_scaled_mad():
    threshold = RobustThreshold(window=5, k=2.0, normal_scores=[1, 2, 3, 4, 100], refresh_every=1)
    # median 3, |deviations| 2 1 0 1 97 → MAD 1
    assert threshold.value() == pytest.approx(3 + 2 * 1.4826)


def test_rolls_over_the_last_window_scores_and_floors_a_zero_mad():
    threshold = RobustThreshold(window=5, k=2.0, refresh_every=1)
    for score in (1, 2, 3, 4, 100):
        threshold.learn(score)
    assert threshold.value() == pytest.approx(3 + 2 * 1.4826)
    threshold.learn(3.0)  # 1 drops out: 2 3 4 100 3 → median 3, MAD 1
    assert threshold.value() == pytest.approx(3 + 2 * 1.4826)
    threshold.learn(3.0)  # 2 drops out: 3 4 100 3 3 → MAD 0, floored at 1% of the median
    assert threshold.value() == pytest.approx(3 + 2 * 0.03)
    assert threshold.scores().tolist() == [3.0, 4.0, 100.0, 3.0, 3.0]


def test_never_drops_below_the_warm_start_value_but_can_rise_above_it():
    threshold = RobustThreshold(window=5, k=2.0, normal_scores=[1, 2, 3, 4, 100], refresh_every=1)
    warm = threshold.value()
    for _ in range(5):
        threshold.learn(3.0)  # on its own: 3 + 2 · 0.03
    assert threshold.value() == warm
    for _ in range(5):
        threshold.learn(10.0)
    assert threshold.value() == pytest.approx(10 + 2 * 0.1)


def test_recomputes_every_refresh_every_learned_scores():
    threshold = RobustThreshold(window=4, k=1.0, normal_scores=[1.0] * 4, refresh_every=3)
    before = threshold.value()
    threshold.learn(50.0)
    threshold.learn(50.0)
    assert threshold.value() == before
    threshold.learn(50.0)
    assert threshold.value() != before


def test_warm_start_spreads_many_normal_scores_over_the_buffer():
    threshold = RobustThreshold(window=100, normal_scores=np.arange(10_000.0))
    kept = threshold.scores()
    assert len(kept) == 100
    assert kept[0] == 0.0 and kept[-1] == 9999.0
    assert np.all(np.diff(kept) > 0)


def test_warm_start_repeats_few_normal_scores_to_fill_the_buffer():
    threshold = RobustThreshold(window=7, normal_scores=[1.0, 2.0, 3.0])
    assert threshold.scores().tolist() == [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0]


def test_warming_up_without_normal_scores_flags_nothing():
    threshold = RobustThreshold(window=100, refresh_every=1)
    assert threshold.value() == math.inf
    for _ in range(10):
        threshold.learn(1.0)
    assert threshold.value() == pytest.approx(1.0 + 8 * 0.01)


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    a = RobustThreshold(window=50, k=3.0, normal_scores=rng.random(80), refresh_every=7)
    for score in rng.random(33):
        a.learn(float(score))
    b = RobustThreshold(window=50, k=3.0, normal_scores=[0.5] * 50, refresh_every=7)
    b.restore(json.loads(json.dumps(a.state())))
    assert b.value() == a.value()
    for score in rng.random(40):
        a.learn(float(score))
        b.learn(float(score))
        assert b.value() == a.value()


def test_restore_refuses_another_policy_state():
    from streamae.thresholds.quantile import QuantileThreshold

    with pytest.raises(ValueError, match="QuantileThreshold"):
        RobustThreshold(window=5).restore(QuantileThreshold(window=5).state())
