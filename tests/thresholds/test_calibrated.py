import json
import math

import numpy as np
import pytest

from streamae.config import Settings
from streamae.thresholds import CalibratedThreshold, make_threshold
from streamae.thresholds.base import MIN_BAR


def test_the_bar_is_the_margin_times_the_quantile_of_the_normal_scores():
    # 0..10: the 0.9 quantile sits at position 9 exactly; the 0.95 one halfway from 9 to 10.
    assert CalibratedThreshold(0.9, 1.0, np.arange(11.0)).value() == pytest.approx(9.0)
    assert CalibratedThreshold(0.95, 2.0, np.arange(11.0)).value() == pytest.approx(19.0)


def test_scores_at_float_rounding_level_do_not_set_the_bar():
    # A constant series rebuilt perfectly: its scores are rounding, and differ by batch.
    threshold = CalibratedThreshold(0.999, 1.1, np.full(500, 1.34e-16))
    assert threshold.value() == MIN_BAR  # not 1.1 x 1.34e-16, which 2.2e-16 crosses
    # A real bar is untouched.
    assert CalibratedThreshold(0.999, 1.1, np.full(500, 1e-4)).value() == pytest.approx(1.1e-4)
    # Nor does a checkpoint saved with such a bar bring it back.
    threshold.restore({"kind": "CalibratedThreshold", "value": 1.5e-16})
    assert threshold.value() == MIN_BAR


def test_learning_never_moves_the_bar():
    threshold = CalibratedThreshold(0.5, 1.0, np.arange(11.0))
    for score in [0.0, 4.9, 1e6]:
        threshold.learn(score)
    assert threshold.value() == pytest.approx(5.0)


def test_non_finite_normal_scores_are_ignored_and_too_few_flag_nothing():
    assert CalibratedThreshold(0.5, 1.0, [np.nan, *range(11), np.inf]).value() == pytest.approx(5.0)
    assert CalibratedThreshold(0.5, 1.0, [1.0, 2.0]).value() == math.inf
    assert CalibratedThreshold(0.5, 1.0, None).value() == math.inf


def test_state_round_trips_through_json_and_checks_its_kind():
    threshold = CalibratedThreshold(0.5, 1.5, np.arange(11.0))
    state = json.loads(json.dumps(threshold.state()))
    fresh = CalibratedThreshold(0.5, 1.5, np.arange(3.0) + 100)
    fresh.restore(state)
    assert fresh.value() == pytest.approx(7.5)
    with pytest.raises(ValueError, match="QuantileThreshold"):
        fresh.restore({"kind": "QuantileThreshold", "value": 1.0})


@pytest.mark.parametrize(("q", "margin"), [(0.0, 1.0), (1.0, 1.0), (0.5, 0.0)])
def test_invalid_quantile_or_margin_is_refused(q, margin):
    with pytest.raises(ValueError):
        CalibratedThreshold(q, margin, np.arange(11.0))


def test_calibrated_policy_uses_the_quantile_and_margin_settings():
    settings = Settings(threshold_policy="calibrated", threshold_quantile=0.5, threshold_margin=1.5)
    threshold = make_threshold(settings, np.arange(11.0))
    assert isinstance(threshold, CalibratedThreshold)
    assert threshold.value() == pytest.approx(7.5)
