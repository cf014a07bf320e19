"""margin · quantile(q) of the normal scores; then following the sensor (see rolling.py).

>>> t = QuantileThreshold(window=100, q=0.5, margin=2.0, normal_scores=range(11))
>>> t.value()  # median 5, doubled
10.0
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from streamae.thresholds.rolling import RollingThreshold


class QuantileThreshold(RollingThreshold):
    """``margin · quantile(q)`` (linear interpolation) calibrates; the bar then rolls."""

    __slots__ = ("q", "margin")

    def __init__(
        self,
        window: int = 2000,
        q: float = 0.999,
        margin: float = 1.0,
        normal_scores: ArrayLike | None = None,
    ) -> None:
        check_quantile(q, margin)
        self.q = float(q)
        self.margin = float(margin)
        super().__init__(window, normal_scores)

    def _compute(self, scores: np.ndarray) -> float:
        return quantile_bar(scores, self.q, self.margin)


def check_quantile(q: float, margin: float) -> None:
    if not 0.0 < q < 1.0 or margin <= 0:
        raise ValueError(f"need 0 < q < 1 and margin > 0, got q={q}, margin={margin}")


def quantile_bar(scores: np.ndarray, q: float, margin: float) -> float:
    """``margin`` times the ``q`` quantile of ``scores`` (np.quantile's "linear" method).

    Interpolates between the two order statistics around position q·(n-1), without
    np.quantile's overhead.
    """
    position = q * (len(scores) - 1)
    below = int(position)
    above = min(below + 1, len(scores) - 1)
    low, high = np.partition(scores, (below, above))[[below, above]]
    return margin * float(low + (high - low) * (position - below))
