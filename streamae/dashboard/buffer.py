"""The dashboard's bounded, thread-safe memory of recent scores and alerts.

One writer (the feed's reader thread) adds records and the monitor group's
latest lag figures; the page takes a ``Snapshot`` under the same lock once per
refresh. Scores are kept per sensor, but the bound is global and evicts the
oldest arrival first, so every sensor keeps roughly the same span of recent
history however fast it reports.

>>> state = FeedState("test", capacity=2)
>>> for ts in (1, 2, 3):
...     state.add_score(Score("s", ts, {"v": 1.0}, 0.1, 1.0, False, {"v": 0.1}, "m"), ts)
>>> [p.ts for p in state.snapshot("s").series]
[2, 3]
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from streamae.messages import Alert, Score

ALERT_CAPACITY = 10_000
RATE_WINDOW_S = 10


class Point(NamedTuple):
    """One buffered score, compact: channel names are shared per sensor."""

    ts: int
    score: float
    threshold: float
    is_anomaly: bool
    channels: tuple[str, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Latest:
    """The newest score of a sensor and when the monitor published it (wall clock, ms)."""

    score: Score
    published_ms: int


@dataclass(frozen=True)
class FeedStatus:
    """Whether the source answers, and how fresh the data is."""

    source: str
    reachable: bool = True
    error: str | None = None
    last_data_ms: int | None = None  # wall clock when the dashboard last received a record

    def problem(self, now_ms: int) -> str | None:
        """The plain sentence the page shows when the source is down, else None."""
        if self.reachable:
            return None
        if self.last_data_ms is None:
            since = "no data received yet"
        else:
            since = f"last data {max(0, now_ms - self.last_data_ms) // 1000} s ago"
        return f"{self.source} is unreachable — retrying; {since}"


@dataclass(frozen=True)
class MonitorLag:
    """The monitor group's progress on the readings topic, as the page shows it.

    All figures are None until the first sample; ``readings_per_s`` stays None
    until a second one. ``error`` says why the last sample failed (figures None).
    """

    group_id: str = ""
    topic: str = ""
    lag: int | None = None  # readings on the topic the group has not committed yet
    readings_per_s: float | None = None  # committed readings per second, between two samples
    has_group: bool = True  # False: the group has committed no offset on the topic
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of the feed for one page refresh."""

    status: FeedStatus
    now_ms: int
    latest: dict[str, Latest]
    alerts: list[Alert]
    series: list[Point] = field(default_factory=list)  # the requested sensor, oldest first
    scores_per_s: float = 0.0
    monitor: MonitorLag = MonitorLag()


def fold_alert(current: Alert | None, event: Alert) -> Alert:
    """Merge an alert event into what is known of that alert (same ``alert_id``).

    The closed event wins over the open one whatever order they arrive in, so a
    duplicate or late "open" never reopens a closed alert.
    """
    if current is None:
        return event
    if current.state == "closed" and event.state == "open":
        return current
    return event


class RateMeter:
    """Records per second over the last ``window_s`` whole seconds, from record timestamps."""

    def __init__(self, window_s: int = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._counts: dict[int, int] = {}

    def add(self, ts_ms: int, count: int = 1) -> None:
        second = ts_ms // 1000
        self._counts[second] = self._counts.get(second, 0) + count
        if len(self._counts) > 4 * self.window_s:
            newest = max(self._counts)
            for old in [s for s in self._counts if s <= newest - self.window_s]:
                del self._counts[old]

    def rate(self, now_ms: int) -> float:
        """Average over the ``window_s`` seconds before the current (incomplete) second."""
        now_s = now_ms // 1000
        total = sum(n for s, n in self._counts.items() if now_s - self.window_s <= s < now_s)
        return total / self.window_s


class FeedState:
    """Recent scores (at most ``capacity`` in total) and alerts folded by ``alert_id``."""

    def __init__(
        self,
        source: str,
        capacity: int,
        alert_capacity: int = ALERT_CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.capacity = capacity
        self.alert_capacity = alert_capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._series: dict[str, deque[Point]] = {}
        self._arrivals: deque[str] = deque()  # sensor of each buffered point, oldest first
        self._channels: dict[str, tuple[str, ...]] = {}
        self._latest: dict[str, Latest] = {}
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        self._rate = RateMeter()
        self._status = FeedStatus(source)
        self._monitor = MonitorLag()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def add_score(self, score: Score, published_ms: int | None = None) -> None:
        """Buffer one score; ``published_ms`` is its Kafka record timestamp (default: now)."""
        self.add_records([(score, published_ms)], [])

    def add_alert(self, alert: Alert) -> None:
        self.add_records([], [alert])

    def add_records(self, scores: list[tuple[Score, int | None]], alerts: list[Alert]) -> None:
        """Add a batch under one lock; a batch from one poll is the usual unit."""
        now_ms = self._now_ms()
        with self._lock:
            for score, published_ms in scores:
                self._add_score(score, now_ms if published_ms is None else published_ms)
            for alert in alerts:
                self._add_alert(alert)
            if scores or alerts:
                self._status = FeedStatus(self._status.source, True, None, now_ms)

    def _add_score(self, score: Score, published_ms: int) -> None:
        sensor = score.sensor_id
        channels = tuple(score.values)
        if self._channels.get(sensor) != channels:
            self._channels[sensor] = channels
        point = Point(
            score.ts,
            score.score,
            score.threshold,
            score.is_anomaly,
            self._channels[sensor],
            tuple(score.values.values()),
        )
        self._series.setdefault(sensor, deque()).append(point)
        self._arrivals.append(sensor)
        while len(self._arrivals) > self.capacity:
            oldest = self._arrivals.popleft()
            self._series[oldest].popleft()
        previous = self._latest.get(sensor)
        if previous is None or score.ts >= previous.score.ts:
            self._latest[sensor] = Latest(score, published_ms)
        self._rate.add(published_ms)

    def _add_alert(self, alert: Alert) -> None:
        self._alerts[alert.alert_id] = fold_alert(self._alerts.get(alert.alert_id), alert)
        if len(self._alerts) > self.alert_capacity:
            # Forget the oldest closed alert; open ones stay visible until they close.
            victim = next((k for k, a in self._alerts.items() if a.state == "closed"), None)
            self._alerts.pop(victim if victim is not None else next(iter(self._alerts)))

    def mark_reachable(self) -> None:
        with self._lock:
            self._status = FeedStatus(self._status.source, True, None, self._status.last_data_ms)

    def mark_unreachable(self, error: str) -> None:
        with self._lock:
            self._status = FeedStatus(self._status.source, False, error, self._status.last_data_ms)

    def set_monitor(self, monitor: MonitorLag) -> None:
        """Replace the monitor group's lag figures (the feed samples them every few seconds)."""
        with self._lock:
            self._monitor = monitor

    def snapshot(self, sensor_id: str | None = None) -> Snapshot:
        """Copy what the page needs; only the requested sensor's history is copied."""
        now_ms = self._now_ms()
        with self._lock:
            series = list(self._series.get(sensor_id, ())) if sensor_id is not None else []
            return Snapshot(
                status=self._status,
                now_ms=now_ms,
                latest=dict(self._latest),
                alerts=list(self._alerts.values()),
                series=series,
                scores_per_s=self._rate.rate(now_ms),
                monitor=self._monitor,
            )
