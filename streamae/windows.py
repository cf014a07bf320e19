"""Per-sensor sliding windows over a stream of readings.

A ``SensorWindow`` holds the newest ``window_size`` readings of one sensor in a
preallocated ``[2W, C]`` array: each row is written twice, at ``p`` and
``p + W``, so the window in time order is always the contiguous slice
``buf[p + 1 : p + 1 + W]`` — no roll, no concatenation.

Readings go in through ``push``, which:

- drops duplicates (same timestamp as a held or released reading) and late
  readings (older than the last released one), and counts them;
- with ``reorder_tolerance_ms > 0``, holds readings back until the sensor's
  newest timestamp is ``tolerance`` ahead, so slightly out-of-order readings
  are put in order (``flush`` releases what is held);
- restarts the window after a gap of more than ``max_gap_ms`` (0 = never);
- appends ``(ts_ms, label, window copy)`` to ``out`` for every window that
  became ready: the first once ``W`` readings are held, then every ``stride``.

>>> import numpy as np
>>> w = SensorWindow(window_size=3, channels=1, stride=2)
>>> out = []
>>> for ts in range(6):
...     _ = w.push(ts, np.array([float(ts)]), None, out)
>>> [(ts, win[:, 0].tolist()) for ts, _, win in out]
[(2, [0.0, 1.0, 2.0]), (4, [2.0, 3.0, 4.0])]
"""

from __future__ import annotations

import base64
import bisect
from enum import IntEnum
from typing import Any

import numpy as np

from streamae.exceptions import InputError

#: ``(ts_ms, label, window [W, C])`` — one ready window and the reading that completed it.
ReadyWindow = tuple[int, int | None, np.ndarray]


class Pushed(IntEnum):
    """What happened to a pushed reading."""

    ACCEPTED = 0
    DUPLICATE = 1
    LATE = 2


class SensorWindow:
    """The sliding window of one sensor (see the module docstring)."""

    __slots__ = (
        "window_size",
        "channels",
        "stride",
        "reorder_tolerance_ms",
        "max_gap_ms",
        "_buf",
        "_pos",
        "count",
        "_due",
        "last_ts",
        "_newest_ts",
        "_pending",
        "restarts",
    )

    def __init__(
        self,
        window_size: int,
        channels: int,
        stride: int = 1,
        reorder_tolerance_ms: int = 0,
        max_gap_ms: int = 0,
    ) -> None:
        if window_size <= 0 or channels <= 0 or not 0 < stride <= window_size:
            raise ValueError(
                f"need window_size > 0, channels > 0, 0 < stride <= window_size; got "
                f"{window_size}, {channels}, {stride}"
            )
        self.window_size = window_size
        self.channels = channels
        self.stride = stride
        self.reorder_tolerance_ms = reorder_tolerance_ms
        self.max_gap_ms = max_gap_ms
        self._buf = np.zeros((2 * window_size, channels), dtype=np.float64)
        self._pos = window_size - 1  # index of the newest row (first write goes to 0)
        #: Readings in the window, up to ``window_size``.
        self.count = 0
        # Readings still to come before the next window is ready.
        self._due = window_size
        #: Timestamp of the last reading released into the window (None before the first).
        self.last_ts: int | None = None
        self._newest_ts: int | None = None
        # Held back for reordering, sorted by ts: (ts_ms, row, label). Without reordering
        # a shared empty tuple: an empty list per sensor is 56 bytes of nothing.
        self._pending: list[tuple[int, np.ndarray, int | None]] | tuple[()] = (
            [] if reorder_tolerance_ms else ()
        )
        #: Times the window restarted after a gap.
        self.restarts = 0

    def push(
        self, ts_ms: int, row: np.ndarray, label: int | None, out: list[ReadyWindow]
    ) -> Pushed:
        """Take one reading (``row`` is float ``[C]`` in model channel order)."""
        last = self.last_ts
        if last is not None and ts_ms <= last:
            return Pushed.DUPLICATE if ts_ms == last else Pushed.LATE
        if self.reorder_tolerance_ms == 0:
            self._release(ts_ms, row, label, out)
            return Pushed.ACCEPTED
        pending = self._pending
        at = bisect.bisect_left(pending, ts_ms, key=_ts)
        if at < len(pending) and pending[at][0] == ts_ms:
            return Pushed.DUPLICATE
        pending.insert(at, (ts_ms, row.copy(), label))
        if self._newest_ts is None or ts_ms > self._newest_ts:
            self._newest_ts = ts_ms
        horizon = self._newest_ts - self.reorder_tolerance_ms
        released = 0
        for held_ts, held_row, held_label in pending:
            if held_ts > horizon:
                break
            self._release(held_ts, held_row, held_label, out)
            released += 1
        if released:
            del pending[:released]
        return Pushed.ACCEPTED

    def flush(self, out: list[ReadyWindow]) -> None:
        """Release every reading held back for reordering."""
        for held_ts, held_row, held_label in self._pending:
            self._release(held_ts, held_row, held_label, out)
        if self._pending:
            self._pending.clear()

    @property
    def held(self) -> int:
        """Readings held back for reordering."""
        return len(self._pending)

    def window(self) -> np.ndarray:
        """The newest ``count`` readings in time order (a view; copy before the next push)."""
        start = self._pos + 1 + self.window_size - self.count
        return self._buf[start : self._pos + 1 + self.window_size]

    def _release(self, ts_ms: int, row: np.ndarray, label: int | None, out: list) -> None:
        if self.max_gap_ms and self.last_ts is not None and ts_ms - self.last_ts > self.max_gap_ms:
            self.count = 0
            self._due = self.window_size
            self.restarts += 1
        size = self.window_size
        pos = self._pos + 1
        if pos == size:
            pos = 0
        self._pos = pos
        buf = self._buf
        buf[pos] = row
        buf[pos + size] = row
        self.last_ts = ts_ms
        if self.count < size:
            self.count += 1
        self._due -= 1
        if self._due == 0:
            self._due = self.stride
            out.append((ts_ms, label, buf[pos + 1 : pos + 1 + size].copy()))

    def state(self) -> dict[str, Any]:
        """JSON-able state: the held rows, counters and readings held for reordering."""
        return {
            "window_size": self.window_size,
            "channels": self.channels,
            "rows": _encode(self.window()),
            "due": self._due,
            "last_ts": self.last_ts,
            "newest_ts": self._newest_ts,
            "restarts": self.restarts,
            "pending": [[ts, row.tolist(), label] for ts, row, label in self._pending],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load what ``state`` returned (window size and channel count must match)."""
        if (state["window_size"], state["channels"]) != (self.window_size, self.channels):
            raise InputError(
                f"window state is for [{state['window_size']}, {state['channels']}] windows, "
                f"this sensor uses [{self.window_size}, {self.channels}]"
            )
        rows = _decode(state["rows"], self.channels)
        self.count = len(rows)
        self._pos = self.window_size - 1
        self._buf[: self.window_size - self.count] = 0.0
        self._buf[self.window_size - self.count : self.window_size] = rows
        self._buf[self.window_size :] = self._buf[: self.window_size]
        self._due = int(state["due"])
        self.last_ts = state["last_ts"]
        self._newest_ts = state["newest_ts"]
        self.restarts = int(state["restarts"])
        pending = [
            (int(ts), np.asarray(row, dtype=np.float64), label)
            for ts, row, label in state["pending"]
        ]
        self._pending = pending if pending or self.reorder_tolerance_ms else ()


def _ts(item: tuple[int, np.ndarray, int | None]) -> int:
    return item[0]


def _encode(rows: np.ndarray) -> str:
    # base64 of little-endian float64: exact and about half the size of a JSON list.
    return base64.b64encode(np.ascontiguousarray(rows, dtype="<f8").tobytes()).decode("ascii")


def _decode(text: str, channels: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").reshape(-1, channels)
