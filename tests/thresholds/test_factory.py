import numpy as np
import pytest

from streamae.config import Settings
from streamae.thresholds import QuantileThreshold, RobustThreshold, make_threshold


def test_robust_policy_uses_the_settings():
    threshold = make_threshold(
        Settings(threshold_policy="robust", threshold_window=7, threshold_k=2.0), np.arange(20.0)
    )
    assert isinstance(threshold, RobustThreshold)
    assert (threshold.window, threshold.k) == (7, 2.0)
    assert threshold.value() == pytest.approx(9.5 + 2.0 * 1.4826 * 5)


def test_quantile_policy_uses_the_settings():
    threshold = make_threshold(
        Settings(threshold_policy="quantile", threshold_quantile=0.5), np.arange(11.0)
    )
    assert isinstance(threshold, QuantileThreshold)
    assert threshold.value() == pytest.approx(5.0)


def test_quantile_policy_applies_the_margin():
    threshold = make_threshold(
        Settings(threshold_policy="quantile", threshold_quantile=0.5, threshold_margin=1.5),
        np.arange(11.0),
    )
    assert threshold.value() == pytest.approx(7.5)
