"""The threshold contract: one rolling threshold per sensor.

A threshold says how high a score must be to count as anomalous for one
sensor. It starts from the model's scores on held-back normal data (warm
start, so there is no blind warm-up); a rolling policy then follows the
sensor's recent scores — but only those it did not flag, so an anomaly cannot
raise its own bar (River's ``AnomalyFilter`` rule).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import numpy as np
from numpy.typing import ArrayLike

from streamae.exceptions import ModelError

#: Lowest bar of every policy. Scores are mean squared errors in units of each channel's
#: normal spread, computed in float32; under 1e-12 (an RMS error of a millionth of the
#: spread) they are rounding, not signal: NAB's constant art_flatline scored 1.3e-16 or
#: 2.2e-16 by the batch it was in, over a calibrated bar of 1.5e-16, and opened an alert.
MIN_BAR = 1e-12
#: Scores a threshold starts from: a model's normal scores, or a rolling policy's first
#: learned ones when it has none. A model with fewer normal scores is refused.
MIN_SCORES = 10


def check_normal_scores(
    scores: ArrayLike, whose: str, remedy: str = "train on more rows, or with a smaller window"
) -> None:
    """Refuse ``whose`` normal ``scores`` (the finite ones count) when there are fewer than
    a threshold starts from, saying so and what to do (``remedy``)."""
    count = int(np.isfinite(np.asarray(scores, dtype=np.float64)).sum())
    if count < MIN_SCORES:
        raise ModelError(
            f"{whose} has {count} normal score(s); a threshold needs at least {MIN_SCORES} "
            f"to start from: {remedy}"
        )


class Threshold(ABC):
    """A rolling per-sensor threshold."""

    __slots__ = ()

    @abstractmethod
    def value(self) -> float:
        """The current threshold."""

    @abstractmethod
    def learn(self, score: float) -> None:
        """Take a score the threshold did not flag into the rolling statistics."""

    def fresh(self) -> Threshold:
        """A copy as it is now: the pipeline calibrates one per model and copies it."""
        return copy.deepcopy(self)

    @abstractmethod
    def state(self) -> dict:
        """JSON-able state, for checkpoints."""

    @abstractmethod
    def restore(self, state: dict) -> None:
        """Load what ``state`` returned."""
