import pytest

from streamae.thresholds.robust import RobustThreshold


def test_calibrated_bar_is_median_plus_k_scaled_mad():
    threshold = RobustThreshold(window=5, k=2.0, normal_scores=[1, 2, 3, 4, 100])
    # median 3, |deviations| 2 1 0 1 97 → MAD 1
    assert threshold.value() == pytest.approx(3 + 2 * 1.4826)


def test_a_zero_mad_is_floored_at_one_percent_of_the_median():
    threshold = RobustThreshold(window=5, k=2.0, normal_scores=[3.0, 3.0, 3.0, 4.0, 100.0])
    assert threshold.value() == pytest.approx(3 + 2 * 0.03)


def test_even_count_median_averages_the_middle_two():
    threshold = RobustThreshold(window=5, k=1.0, normal_scores=[1.0, 2.0, 4.0, 10.0])
    # median 3, |deviations| 2 1 1 7 → MAD 1.5
    assert threshold.value() == pytest.approx(3 + 1.4826 * 1.5)
