import numpy as np
import pytest

from streamae.thresholds.base import MIN_BAR
from streamae.thresholds.quantile import QuantileThreshold


def test_calibrated_bar_is_the_quantile_times_the_margin():
    threshold = QuantileThreshold(window=4, q=0.5, margin=1.5, normal_scores=[4, 1, 3, 2])
    assert threshold.value() == pytest.approx(2.5 * 1.5)


def test_interpolates_linearly_between_order_statistics():
    threshold = QuantileThreshold(window=4, q=0.75, normal_scores=[1, 2, 3, 4])
    assert threshold.value() == pytest.approx(3.25)


@pytest.mark.parametrize("q, margin", [(0.0, 1.0), (1.0, 1.0), (0.5, 0.0)])
def test_invalid_quantile_or_margin_is_refused(q, margin):
    with pytest.raises(ValueError):
        QuantileThreshold(q=q, margin=margin)


def test_scores_at_float_rounding_level_do_not_set_the_rolling_bar_either():
    # A constant series rebuilt perfectly: its scores are rounding, and differ by batch.
    threshold = QuantileThreshold(
        window=2000, q=0.999, margin=1.1, normal_scores=np.full(500, 1.34e-16)
    )
    assert threshold.value() == MIN_BAR  # not 1.1 x 1.34e-16, which 2.2e-16 crosses
    for _ in range(100):
        threshold.learn(1.34e-16)
    assert threshold.value() >= MIN_BAR
    # Nor does a checkpoint saved with such a bar bring it back.
    state = threshold.state() | {"floor": 1.5e-16, "value": 1.5e-16}
    threshold.restore(state)
    assert threshold.value() == MIN_BAR
