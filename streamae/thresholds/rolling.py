"""What both threshold policies share: a calibrated bar that follows the sensor's scores.

A policy (``_compute``) turns scores into a bar — median + k·MAD, or a quantile.
It is computed exactly once, on the detector's ``normal_scores`` (held-back
normal data): the **calibrated bar**. From then on the bar follows the sensor's
own unflagged scores in O(1) time and memory per sensor:

- a streaming median ``m`` and median absolute deviation ``s`` of the learned
  scores, each moved a small step towards every new score (the "frugal"
  streaming quantile: ``m ± η·s``, ``s·(1 ± η)``, ``η = STEPS / window``), so
  about the last ``window`` scores count and one outlier moves them by one
  step, however far out it is — the robustness of median and MAD, without
  keeping the scores;
- they start at the median and MAD of the normal scores (no blind warm-up),
  where the calibrated bar sits ``z`` MADs above the median; the bar is
  ``m + z·s`` — a sensor whose scores are higher or wider carries its bar
  along — and never lower than the calibrated bar (itself never under ``MIN_BAR``).

Why the floor: the statistics only learn scores the bar did not flag, a sample
cut off at the bar and so biased low; a bar that once dips into the normal
scores stops learning the ones above it and keeps falling (on NAB's daily-cycle
series it fell onto the quiet half of the cycle and flagged every busy half).
The rolling part therefore adapts the bar upwards — to a noisier sensor, to
drift — and the model's calibration is the lowest it goes.

The state is five numbers instead of ``window`` scores (it is checkpointed for
every sensor that changed, every checkpoint interval); updates are exact and order-preserving, so batches,
single scores and checkpoint restores give the same bar.

Without normal scores the first ``MIN_SCORES`` learned scores calibrate the bar
(until then it is infinite: nothing is flagged).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from streamae.thresholds.base import MIN_BAR, MIN_SCORES, Threshold

#: ``η = STEPS / window``: a shift of one MAD is followed within ``window / STEPS`` scores.
STEPS = 4.0
#: Largest step: beyond it the multiplicative MAD update is unstable (tiny windows).
MAX_STEP = 0.5
#: Smallest spread assumed, relative to the median (and absolute), so constant scores
#: (MAD 0) neither give a bar the tiniest wobble crosses, freeze the streaming
#: estimates, nor put the bar infinitely many MADs out.
MIN_SCALE_RELATIVE = 0.01
MIN_SCALE_ABSOLUTE = 1e-12


class RollingThreshold(Threshold):
    """A calibrated bar that follows the sensor's learned scores (see the module docstring)."""

    __slots__ = ("window", "_median", "_mad", "_z", "_floor", "_value", "_first")

    def __init__(self, window: int, normal_scores: ArrayLike | None = None) -> None:
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        self.window = window
        self._median = self._mad = self._z = 0.0
        self._floor = self._value = math.inf
        self._first: list[float] | None = []
        warm = np.ravel(np.asarray([] if normal_scores is None else normal_scores, np.float64))
        warm = warm[np.isfinite(warm)]
        if len(warm):
            self._calibrate(warm)

    def fresh(self) -> RollingThreshold:
        """A copy of this threshold as it is now (call it on one that never learns).

        Every sensor of a model starts from the same normal scores: the pipeline
        calibrates one template per model and gives each new sensor a copy —
        cheaper, and the copies share their unchanging numbers (~100 bytes a sensor).
        """
        copy = object.__new__(type(self))
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                setattr(copy, name, getattr(self, name))
        if self._first is not None:
            copy._first = list(self._first)
        return copy

    def value(self) -> float:
        return self._value

    def learn(self, score: float) -> None:
        if self._first is not None:
            if math.isfinite(score):
                self._first.append(score)
            if len(self._first) >= MIN_SCORES:
                self._calibrate(np.asarray(self._first))
            return
        step = min(STEPS / self.window, MAX_STEP)
        median, mad = self._median, self._mad
        if score > median:
            self._median = median + step * mad
        elif score < median:
            self._median = median - step * mad
        deviation = abs(score - median)
        if deviation > mad:
            mad *= 1.0 + step
        elif deviation < mad:
            mad = max(mad * (1.0 - step), self._min_scale(self._median))
        self._mad = mad
        self._value = max(self._floor, self._median + self._z * mad)

    def state(self) -> dict[str, Any]:
        return {
            "kind": type(self).__name__,
            "first": None if self._first is None else list(self._first),
            "median": self._median,
            "mad": self._mad,
            "z": self._z,
            "floor": None if self._floor == math.inf else self._floor,
            "value": None if self._value == math.inf else self._value,
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"threshold state is a {state.get('kind')}, not {type(self).__name__}")
        if "median" not in state:
            raise ValueError("threshold state of an older format (a score buffer)")
        self._first = None if state["first"] is None else [float(s) for s in state["first"]]
        self._median, self._mad = float(state["median"]), float(state["mad"])
        self._z = float(state["z"])
        # A checkpoint from before MIN_BAR may hold a rounding-level bar.
        self._floor = math.inf if state["floor"] is None else max(float(state["floor"]), MIN_BAR)
        self._value = (
            math.inf if state["value"] is None else max(float(state["value"]), self._floor)
        )

    def _calibrate(self, scores: np.ndarray) -> None:
        """The calibrated bar, and how many MADs above the median of ``scores`` it sits."""
        self._first = None
        self._floor = self._value = max(float(self._compute(scores)), MIN_BAR)
        self._median = fast_median(scores)
        self._mad = max(fast_median(np.abs(scores - self._median)), self._min_scale(self._median))
        self._z = (self._floor - self._median) / self._mad

    @staticmethod
    def _min_scale(median: float) -> float:
        return max(MIN_SCALE_RELATIVE * abs(median), MIN_SCALE_ABSOLUTE)

    @abstractmethod
    def _compute(self, scores: np.ndarray) -> float:
        """The policy's bar for these scores (order does not matter)."""


def fast_median(values: np.ndarray) -> float:
    """``np.median`` without its overhead."""
    half = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, half)[half])
    low, high = np.partition(values, (half - 1, half))[half - 1 : half + 1]
    return float((low + high) / 2)
