import json

import numpy as np
import pytest

from streamae.thresholds.quantile import QuantileThreshold


def test_warm_start_value_is_the_quantile_times_the_margin():
    threshold = QuantileThreshold(window=4, q=0.5, margin=1.5, normal_scores=[4, 1, 3, 2])
    assert threshold.value() == pytest.approx(2.5 * 1.5)


def test_interpolates_linearly_and_rolls_over_the_window():
    threshold = QuantileThreshold(window=4, q=0.75, normal_scores=[1, 2, 3, 4], refresh_every=1)
    assert threshold.value() == pytest.approx(3.25)
    threshold.learn(10.0)  # 2 3 4 10 → 4 + 0.25 · 6
    assert threshold.value() == pytest.approx(5.5)


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(1)
    a = QuantileThreshold(window=30, q=0.9, normal_scores=rng.random(100), refresh_every=4)
    for score in rng.random(11):
        a.learn(float(score))
    b = QuantileThreshold(window=30, q=0.9, refresh_every=4)
    b.restore(json.loads(json.dumps(a.state())))
    for score in rng.random(20):
        a.learn(float(score))
        b.learn(float(score))
        assert b.value() == a.value()


@pytest.mark.parametrize("q, margin", [(0.0, 1.0), (1.0, 1.0), (0.5, 0.0)])
def test_invalid_quantile_or_margin_is_refused(q, margin):
    with pytest.raises(ValueError):
        QuantileThreshold(q=q, margin=margin)
