import pytest

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
