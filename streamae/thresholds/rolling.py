"""What both threshold policies share: a calibrated bar that follows the sensor's scores.

A policy (``_compute``) turns scores into a bar — median + k·MAD, or a quantile.
It is computed exactly once, on the detector's ``normal_scores`` (held-back
normal data): the **calibrated bar**. From then on the bar follows the sensor's
own unflagged scores in O(1) time and memory per sensor:

- the log of each learned score updates an exponentially weighted mean and
  upper semi-variance (weight ``1/window`` for the newest, so about the last
  ``window`` scores count; warm-started with the moments of the normal scores,
  so there is no blind warm-up). Only deviations above the mean spread the bar:
  an upper-tail bar has no business rising because a score was unusually low;
- the calibrated bar sits ``z`` weighted semi-deviations above the weighted
  mean in log space; the bar is ``exp(mean + z · semi-deviation)`` — so a sensor
  whose scores grow tenfold, or spread out upwards, carries its bar along — and
  never lower than the calibrated bar.

Why the floor: the statistics only learn scores the bar did not flag, a sample
cut off at the bar and so biased low; a bar that once dips into the normal
scores stops learning the ones above it and keeps falling (on NAB's daily-cycle
series it fell onto the quiet half of the cycle and flagged every busy half).
The rolling part therefore adapts the bar upwards — to a noisier sensor, to
drift — and the model's calibration is the lowest it goes.

Why log space and moments instead of a buffer of recent scores: reconstruction
errors are positive and right-skewed (about log-normal), and the state is four
numbers instead of ``window`` of them — it is checkpointed for every sensor
every second. Updates are exact and order-preserving: batches, single scores
and checkpoint restores give the same bar.

Without normal scores the first ``MIN_SCORES`` learned scores calibrate the bar
(until then it is infinite: nothing is flagged).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from streamae.thresholds.base import Threshold

#: Scores that calibrate a threshold without normal scores; fewer normal scores are refused.
MIN_SCORES = 10
#: Smallest log-space spread assumed in calibration (scores within ~10% of each other),
#: so near-constant normal scores do not put the bar infinitely many deviations out.
MIN_LOG_STD = 0.1
#: Scores below this fraction of the calibrated bar count as this fraction (a score
#: of 0 has no log, and for an upper-tail bar all such scores are alike).
LOG_FLOOR_RELATIVE = 1e-3


class RollingThreshold(Threshold):
    """A calibrated bar that follows the sensor's learned scores (see the module docstring)."""

    __slots__ = ("window", "_alpha", "_mean", "_var", "_z", "_floor", "_tiny", "_value", "_first")

    def __init__(self, window: int, normal_scores: ArrayLike | None = None) -> None:
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.window = window
        self._alpha = 1.0 / window
        self._mean = self._var = self._z = 0.0
        self._floor = self._value = math.inf
        self._tiny = 0.0
        self._first: list[float] | None = []
        warm = np.ravel(np.asarray([] if normal_scores is None else normal_scores, np.float64))
        warm = warm[np.isfinite(warm)]
        if len(warm):
            self._calibrate(warm)

    def value(self) -> float:
        return self._value

    def learn(self, score: float) -> None:
        if self._first is not None:
            self._first.append(score)
            if len(self._first) >= MIN_SCORES:
                self._calibrate(np.asarray(self._first))
            return
        delta = math.log(max(score, self._tiny)) - self._mean
        self._mean += self._alpha * delta
        upper = max(delta, 0.0)
        self._var = (1.0 - self._alpha) * (self._var + self._alpha * upper * upper)
        self._value = max(self._floor, math.exp(self._mean + self._z * math.sqrt(self._var)))

    def state(self) -> dict[str, Any]:
        return {
            "kind": type(self).__name__,
            "first": self._first,
            "mean": self._mean,
            "var": self._var,
            "z": self._z,
            "floor": None if self._floor == math.inf else self._floor,
            "value": None if self._value == math.inf else self._value,
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"threshold state is a {state.get('kind')}, not {type(self).__name__}")
        if "mean" not in state:
            raise ValueError("threshold state of an older format (a score buffer)")
        self._first = None if state["first"] is None else [float(s) for s in state["first"]]
        self._mean, self._var, self._z = (
            float(state["mean"]),
            float(state["var"]),
            float(state["z"]),
        )
        self._floor = math.inf if state["floor"] is None else float(state["floor"])
        self._value = math.inf if state["value"] is None else float(state["value"])
        self._tiny = self._floor * LOG_FLOOR_RELATIVE if self._floor != math.inf else 0.0

    def _calibrate(self, scores: np.ndarray) -> None:
        """The calibrated bar, and where it sits in the log-space moments of ``scores``."""
        self._first = None
        self._floor = self._value = float(self._compute(scores))
        self._tiny = max(abs(self._floor) * LOG_FLOOR_RELATIVE, np.finfo(np.float64).tiny)
        logs = np.log(np.maximum(scores, self._tiny))
        self._mean = float(logs.mean())
        self._var = float(np.square(np.maximum(logs - self._mean, 0.0)).mean())
        std = max(math.sqrt(self._var), MIN_LOG_STD)
        self._z = (math.log(max(self._floor, self._tiny)) - self._mean) / std

    @abstractmethod
    def _compute(self, scores: np.ndarray) -> float:
        """The policy's bar for these scores (order does not matter)."""
