"""The calibrated bar, held fixed: ``margin · quantile(q)`` of the model's normal scores.

The rolling policies move their bar with the scores they learn — only those
under the bar, and never during an alert. When a sensor drifts slowly upwards
(a temperature over a season, a load growing) the bar climbs with the drift,
and the anomaly that follows has to clear a bar the drift raised. This policy
keeps the bar where the model's calibration put it: the ``q`` quantile of the
detector's scores on held-back normal data, times ``margin``. It needs no state
but that number, so checkpoints are tiny and a restore cannot change it.

Measured on the development corpora (see benchmarks/README.md): with the
convolutional autoencoder it finds 18 of NAB's 25 windows where the rolling
quantile bar finds 13.

>>> CalibratedThreshold(q=0.5, margin=2.0, normal_scores=range(11)).value()  # median 5, doubled
10.0
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from streamae.thresholds.base import MIN_BAR, MIN_SCORES, Threshold
from streamae.thresholds.quantile import check_quantile, quantile_bar


class CalibratedThreshold(Threshold):
    """``margin · quantile(q)`` of ``normal_scores`` (linear interpolation, at least
    ``MIN_BAR``), never updated."""

    __slots__ = ("q", "margin", "_value")

    def __init__(
        self, q: float = 0.999, margin: float = 1.0, normal_scores: ArrayLike | None = None
    ) -> None:
        check_quantile(q, margin)
        self.q = float(q)
        self.margin = float(margin)
        scores = np.ravel(np.asarray([] if normal_scores is None else normal_scores, np.float64))
        scores = scores[np.isfinite(scores)]
        # Too few scores to calibrate: flag nothing rather than guess (as the rolling bars do).
        self._value = (
            max(quantile_bar(scores, self.q, self.margin), MIN_BAR)
            if len(scores) >= MIN_SCORES
            else math.inf
        )

    def value(self) -> float:
        return self._value

    def learn(self, score: float) -> None:
        """Nothing to learn: the bar is the calibration's."""

    def state(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "value": self._value}

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"threshold state is a {state.get('kind')}, not {type(self).__name__}")
        # A checkpoint from before MIN_BAR may hold a rounding-level bar.
        self._value = max(float(state["value"]), MIN_BAR)
