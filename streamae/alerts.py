"""The alert lifecycle of one sensor: open after k windows over, close after m calm ones.

An alert opens when ``open_after`` consecutive windows are over the threshold
and closes after ``close_after`` consecutive windows below it; each alert gives
exactly one "open" and one "closed" event. With ``rearm`` > 0, for ``rearm``
windows after an alert closed a new one needs scores over a raised bar: at first
that alert's peak, falling geometrically to the threshold over those windows
(after k of them, threshold × (peak / threshold) ** (1 - k / rearm)). A sensor
that keeps returning to a level it was just alerted for (a recurring burst, an
anomaly that fades and flares) does not page again for it, anything worse still
alerts at once, and the older the last alert, the less its peak holds back: by
ratio, as scores are squared errors. An alert counts from the first window of
the run that opened it (``opened_at``), so its ``alert_id`` — a hash of
(sensor_id, opened_at, model_version) — is the same on every replay, and a
subscriber can deduplicate on it.

With ``fade`` > 0 (which needs ``rearm`` > 0), an open alert also counts a
window as calm once its score is at most ``fade`` × the alert's peak: an anomaly
that has faded to that part of its peak closes its alert even when the aftermath
(a drifted level) keeps the scores over the threshold. Scores are mean squared
errors, so 0.25 is half the peak's root-mean-square error. The re-arm keeps the
faded level from opening another alert at once; a level still over the threshold
opens a new alert (with that level as its peak) once the re-arm's falling bar
passed under it, at the latest when ``rearm`` windows passed.

>>> import numpy as np
>>> t = AlertTracker("pump-7", ("p", "t"), "v1", open_after=2, close_after=1)
>>> errs = np.array([0.5, 2.0])
>>> [e.state for ts in (1, 2, 3) for e in t.update(ts, 9.0, 1.0, errs)]
['open']
>>> [(e.state, e.opened_at, e.closed_at) for e in t.update(4, 0.1, 1.0, errs)]
[('closed', 1, 4)]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from streamae.messages import Alert

#: How many channels an alert names as the likely cause.
TOP_CHANNELS = 3


def alert_id(sensor_id: str, opened_at: int, model_version: str) -> str:
    """The deterministic id of the alert that ``sensor_id`` opened at ``opened_at``."""
    key = f"{sensor_id}\x1f{opened_at}\x1f{model_version}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


class AlertTracker:
    """Turns one sensor's flagged windows into alert open/close events."""

    __slots__ = (
        "sensor_id",
        "channels",
        "model_version",
        "open_after",
        "close_after",
        "is_open",
        "_over",
        "_below",
        "_run_start",
        "_peak",
        "_peak_errors",
        "_threshold",
        "rearm",
        "_rearm_left",
        "_last_peak",
        "fade",
    )

    def __init__(
        self,
        sensor_id: str,
        channels: Sequence[str],
        model_version: str,
        open_after: int = 3,
        close_after: int = 10,
        rearm: int = 0,
        fade: float = 0.0,
    ) -> None:
        if open_after <= 0 or close_after <= 0:
            raise ValueError(f"open_after and close_after must be > 0: {open_after}, {close_after}")
        if rearm < 0:
            raise ValueError(f"rearm must be >= 0 (0: off), got {rearm}")
        if not 0.0 <= fade < 1.0:
            raise ValueError(f"fade must be in [0, 1) (0: off), got {fade}")
        if fade and not rearm:
            raise ValueError(
                "fade needs rearm > 0: without it the level an alert faded to re-opens it at once"
            )
        self.sensor_id = sensor_id
        self.channels = tuple(channels)
        self.model_version = model_version
        self.open_after = open_after
        self.close_after = close_after
        #: True while an alert is open.
        self.is_open = False
        self._over = 0  # consecutive windows over the threshold
        self._below = 0  # consecutive windows below it while open
        self._run_start = 0  # ts of the first window of the current run over
        self._peak = -np.inf
        self._peak_errors: list[float] = []
        self._threshold = 0.0  # threshold at the window that opened the alert
        #: Windows after a close during which a new alert must beat a bar that falls from
        #: the last peak to the threshold (0: off).
        self.rearm = rearm
        self._rearm_left = 0  # windows left in which the last peak still raises the bar
        self._last_peak = -np.inf  # peak score of the last closed alert
        #: Part of the peak at or under which an open alert's window counts as calm (0: off).
        self.fade = fade

    def update(
        self, ts_ms: int, score: float, threshold: float, channel_errors: np.ndarray
    ) -> list[Alert]:
        """Take the next window's score; return the events it caused (none or one)."""
        if not self.is_open and self._rearm_left > 0:
            self._rearm_left -= 1
            threshold = self._rearmed(threshold)
        faded = self.fade > 0 and self.is_open and score <= self.fade * self._peak
        calm = score <= threshold or faded
        if not calm:
            if self._over == 0 and not self.is_open:  # a new run: it may become an alert
                self._run_start = ts_ms
                self._peak = -np.inf
            self._over += 1
            self._below = 0
            if score > self._peak:
                self._peak = score
                self._peak_errors = [float(e) for e in channel_errors]
            if not self.is_open and self._over >= self.open_after:
                self.is_open = True
                self._threshold = threshold
                return [self._event("open", None)]
            return []
        self._over = 0
        if self.is_open:
            self._below += 1
            if self._below >= self.close_after:
                self.is_open = False
                self._below = 0
                self._rearm_left = self.rearm
                self._last_peak = self._peak
                return [self._event("closed", ts_ms)]
        return []

    def _rearmed(self, threshold: float) -> float:
        """The bar while re-armed, ``_rearm_left`` windows before the re-arm ends."""
        peak = self._last_peak
        if peak <= threshold:
            return threshold
        if threshold <= 0:  # no ratio to fall by: the peak holds for the whole horizon
            return peak
        return threshold * (peak / threshold) ** (self._rearm_left / self.rearm)

    def _event(self, state: Literal["open", "closed"], closed_at: int | None) -> Alert:
        order = np.argsort(-np.asarray(self._peak_errors), kind="stable")[:TOP_CHANNELS]
        return Alert(
            alert_id=alert_id(self.sensor_id, self._run_start, self.model_version),
            sensor_id=self.sensor_id,
            state=state,
            opened_at=self._run_start,
            closed_at=closed_at,
            peak_score=float(self._peak),
            threshold=float(self._threshold),
            top_channels=[self.channels[i] for i in order],
            model_version=self.model_version,
        )

    def state(self) -> dict[str, Any]:
        """JSON-able state, for checkpoints."""
        return {
            "is_open": self.is_open,
            "over": self._over,
            "below": self._below,
            "run_start": self._run_start,
            "peak": None if self._peak == -np.inf else float(self._peak),
            "peak_errors": list(self._peak_errors),
            "threshold": self._threshold,
            "rearm_left": self._rearm_left,
            "last_peak": None if self._last_peak == -np.inf else float(self._last_peak),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load what ``state`` returned."""
        self.is_open = bool(state["is_open"])
        self._over = int(state["over"])
        self._below = int(state["below"])
        self._run_start = int(state["run_start"])
        self._peak = -np.inf if state["peak"] is None else float(state["peak"])
        self._peak_errors = [float(e) for e in state["peak_errors"]]
        self._threshold = float(state["threshold"])
        # Checkpoints written before re-arming existed have no such keys.
        self._rearm_left = int(state.get("rearm_left", 0))
        last_peak = state.get("last_peak")
        self._last_peak = -np.inf if last_peak is None else float(last_peak)
