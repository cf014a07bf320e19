import numpy as np
import pytest

from streamae.config import Settings
from streamae.exceptions import ModelError
from streamae.thresholds import QuantileThreshold, RobustThreshold, make_threshold
from streamae.thresholds.base import check_normal_scores


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


def test_a_model_is_refused_with_fewer_finite_normal_scores_than_a_threshold_starts_from():
    scores = np.r_[np.arange(9.0), np.nan, np.inf, -np.inf]  # 12 scores, 9 of them finite
    with pytest.raises(
        ModelError, match=r"model m has 9 normal score\(s\).*at least 10.*: retrain"
    ):
        check_normal_scores(scores, "model m", "retrain")
    check_normal_scores(np.r_[scores, 9.0], "model m", "retrain")  # 10 finite: accepted
