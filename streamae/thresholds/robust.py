"""median + k·MAD of the normal scores (robust to the odd outlier among them); then rolling.

>>> t = RobustThreshold(window=100, k=3.0, normal_scores=[1.0, 2.0, 3.0] * 10)
>>> round(t.value(), 4)  # median 2, MAD 1 → 2 + 3 · 1.4826
6.4478
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from streamae.thresholds.rolling import (
    MIN_SCALE_ABSOLUTE,
    MIN_SCALE_RELATIVE,
    RollingThreshold,
    fast_median,
)

#: Scales the MAD to the standard deviation of a normal distribution.
MAD_TO_STD = 1.4826


class RobustThreshold(RollingThreshold):
    """``median + k · max(1.4826 · MAD, 1% of |median|)`` calibrates; the bar then rolls."""

    __slots__ = ("k",)

    def __init__(
        self,
        window: int = 2000,
        k: float = 8.0,
        normal_scores: ArrayLike | None = None,
    ) -> None:
        self.k = float(k)
        super().__init__(window, normal_scores)

    def _compute(self, scores: np.ndarray) -> float:
        median = fast_median(scores)
        mad = fast_median(np.abs(scores - median))
        scale = max(MAD_TO_STD * mad, MIN_SCALE_RELATIVE * abs(median), MIN_SCALE_ABSOLUTE)
        return median + self.k * scale
