"""The rolling buffer both threshold policies share.

Scores go into a fixed-size ring buffer; a subclass turns the buffer into a
threshold with ``_compute``. Three rules keep it sound:

- Warm start: the detector's ``normal_scores`` (held-back normal data) fill the
  whole buffer, so there is no blind warm-up and the sensor's own scores take
  over gradually, one ``window`` of them later.
- Floor: the threshold never drops below its warm-start value. The buffer only
  learns scores the threshold did not flag, a sample cut off at the threshold
  and so biased low; a threshold that once dips into the normal scores stops
  learning the ones above it and keeps falling (on NAB's daily-cycle series it
  fell onto the quiet half of the cycle and flagged every busy half). The
  rolling part therefore adapts the bar upwards — to a noisier sensor, to drift —
  and the model's calibrated bar is the lowest it goes.
- The threshold is recomputed every ``refresh_every`` learned scores rather than
  on every ``value()``: cheap, and — the counter being part of the state —
  exactly the same whether scores arrive one by one, in batches, or across a
  checkpoint restore.
"""

from __future__ import annotations

import base64
import math
from abc import abstractmethod
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from streamae.thresholds.base import Threshold

#: Learned scores between two recomputations of the threshold.
REFRESH_EVERY = 10
#: Below this many scores the threshold is still warming up and flags nothing.
MIN_SCORES = 10


class RollingThreshold(Threshold):
    """A threshold computed from the last ``window`` learned scores (see the module docstring)."""

    def __init__(
        self,
        window: int,
        normal_scores: ArrayLike | None = None,
        refresh_every: int = REFRESH_EVERY,
    ) -> None:
        if window <= 0 or refresh_every <= 0:
            raise ValueError(f"window and refresh_every must be > 0, got {window}, {refresh_every}")
        self.window = window
        self.refresh_every = refresh_every
        warm = np.ravel(np.asarray([] if normal_scores is None else normal_scores, np.float64))
        warm = _resample(warm, window)
        self._buf = np.zeros(window, dtype=np.float64)
        self._buf[: len(warm)] = warm
        self._count = len(warm)
        self._pos = len(warm) % window  # where the next score goes
        self._since = 0  # scores learned since the last recomputation
        self._floor = -math.inf
        self._value = self._refresh()
        if len(warm):
            self._floor = self._value

    def value(self) -> float:
        return self._value

    def learn(self, score: float) -> None:
        self._buf[self._pos] = score
        self._pos = (self._pos + 1) % self.window
        if self._count < self.window:
            self._count += 1
        self._since += 1
        if self._since >= self.refresh_every:
            self._value = self._refresh()
            self._since = 0

    def scores(self) -> np.ndarray:
        """The buffered scores, oldest first."""
        if self._count < self.window:
            return self._buf[: self._count].copy()
        return np.concatenate((self._buf[self._pos :], self._buf[: self._pos]))

    def state(self) -> dict[str, Any]:
        return {
            "kind": type(self).__name__,
            "scores": base64.b64encode(self.scores().astype("<f8").tobytes()).decode("ascii"),
            "since": self._since,
            "value": self._value,
            "floor": None if self._floor == -math.inf else self._floor,
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"threshold state is a {state.get('kind')}, not {type(self).__name__}")
        scores = np.frombuffer(base64.b64decode(state["scores"]), dtype="<f8")[-self.window :]
        self._buf[:] = 0.0
        self._buf[: len(scores)] = scores
        self._count = len(scores)
        self._pos = len(scores) % self.window
        self._since = int(state["since"])
        self._value = float(state["value"])
        self._floor = -math.inf if state["floor"] is None else float(state["floor"])

    def _refresh(self) -> float:
        if self._count < min(MIN_SCORES, self.window):
            return math.inf
        return max(float(self._compute(self._buf[: self._count])), self._floor)

    @abstractmethod
    def _compute(self, scores: np.ndarray) -> float:
        """The threshold for these scores (order does not matter)."""


def _resample(scores: np.ndarray, size: int) -> np.ndarray:
    """``size`` scores evenly covering ``scores``: repeated in turn, or evenly subsampled."""
    if len(scores) == 0 or len(scores) == size:
        return scores
    if len(scores) < size:
        return np.resize(scores, size)
    return scores[np.linspace(0, len(scores) - 1, size).round().astype(np.int64)]
