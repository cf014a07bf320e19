"""Pure functions from a feed snapshot to the tables and chart data the page draws.

No Streamlit and no I/O here, so every rule of the page (who counts as
alerting, how rows sort, where alert shading starts and ends) is tested with
hand-built inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import pandas as pd

from streamae.dashboard.buffer import Latest, MonitorLag, Point, fold_alert
from streamae.messages import Alert

ALERTING = "alerting"
ABOVE = "above threshold"
NORMAL = "normal"
STATUS_ORDER = {ALERTING: 0, ABOVE: 1, NORMAL: 2}
STATUS_LABEL = {ALERTING: "🔴 alerting", ABOVE: "🟠 above threshold", NORMAL: "🟢 normal"}
STATE_LABEL = {"open": "🔴 open", "closed": "⚪ closed"}
NO_VALUE = "—"
NO_GROUP = "no monitor group yet"

OVERVIEW_COLUMNS = [
    "status",
    "sensor",
    "score",
    "threshold",
    "ratio",
    "last_score",
    "open_alerts",
    "model",
]
ALERT_COLUMNS = [
    "state",
    "sensor",
    "opened",
    "closed",
    "duration",
    "peak_score",
    "threshold",
    "top_channels",
    "alert_id",
]


def fold_alerts(events: Iterable[Alert]) -> dict[str, Alert]:
    """Alert events (open, then closed, in any order) folded into one alert per ``alert_id``."""
    folded: dict[str, Alert] = {}
    for event in events:
        folded[event.alert_id] = fold_alert(folded.get(event.alert_id), event)
    return folded


def open_alerts_by_sensor(alerts: Iterable[Alert]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for alert in alerts:
        if alert.state == "open":
            counts[alert.sensor_id] = counts.get(alert.sensor_id, 0) + 1
    return counts


def alert_end_ms(alert: Alert, latest_ts: Mapping[str, int]) -> int:
    """When the alert ended, or for an open one the sensor's newest score time (event time)."""
    if alert.state == "closed" and alert.closed_at is not None:
        return alert.closed_at
    return max(alert.opened_at, latest_ts.get(alert.sensor_id, alert.opened_at))


def format_duration(ms: int) -> str:
    """Compact duration: ``'45s'``, ``'3m 05s'``, ``'2h 04m'``, ``'3d 01h'``."""
    seconds = max(0, ms) // 1000
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def sensor_status(latest: Latest, open_alerts: int) -> str:
    if open_alerts:
        return ALERTING
    if latest.score.is_anomaly or latest.score.score > latest.score.threshold:
        return ABOVE
    return NORMAL


def overview_frame(
    latest: Mapping[str, Latest], alerts: Iterable[Alert], now_ms: int
) -> pd.DataFrame:
    """One row per sensor: alerting first, then by score / threshold (highest first), then id.

    ``last_score`` says how long ago the monitor published the sensor's newest score.
    """
    open_counts = open_alerts_by_sensor(alerts)
    rows = []
    for sensor, item in latest.items():
        score = item.score
        count = open_counts.get(sensor, 0)
        status = sensor_status(item, count)
        ratio = score.score / score.threshold if score.threshold > 0 else float("inf")
        rows.append(
            (
                status,
                sensor,
                score.score,
                score.threshold,
                ratio,
                format_duration(now_ms - item.published_ms) + " ago",
                count,
                score.model_version,
            )
        )
    rows.sort(key=lambda r: (STATUS_ORDER[r[0]], -r[4], r[1]))
    frame = pd.DataFrame(rows, columns=OVERVIEW_COLUMNS)
    frame["status"] = frame["status"].map(STATUS_LABEL)
    return frame


class MetricText(NamedTuple):
    """What one metric tile shows: its value, a small gray note under it, and a tooltip."""

    value: str
    note: str | None = None
    help: str | None = None


def monitor_metrics(monitor: MonitorLag) -> tuple[MetricText, MetricText]:
    """The "Monitor readings/s" and "Consumer lag" tiles for the monitor group's figures."""
    who = f"group `{monitor.group_id}` on topic `{monitor.topic}`"
    if monitor.error is not None:
        failed = MetricText(NO_VALUE, None, f"Cannot read the lag of {who}: {monitor.error}")
        return failed, failed
    if monitor.lag is None:
        waiting = MetricText(NO_VALUE, None, "Measuring: the first sample comes within seconds.")
        return waiting, waiting
    if not monitor.has_group:
        waiting = (
            f"Group `{monitor.group_id}` has committed no offset on topic `{monitor.topic}` "
            f"yet; {monitor.lag:,} readings are waiting."
        )
        no_group = MetricText(NO_VALUE, NO_GROUP, waiting)
        return no_group, no_group
    rate = (
        MetricText(NO_VALUE, None, "Measured between two samples a few seconds apart.")
        if monitor.readings_per_s is None
        else MetricText(
            f"{monitor.readings_per_s:,.1f}", None, f"Readings per second committed by {who}."
        )
    )
    lag = MetricText(
        f"{monitor.lag:,}", None, f"Readings not yet committed by {who}, over all partitions."
    )
    return rate, lag


def default_sensor(sensors: Sequence[str], alerts: Iterable[Alert]) -> str | None:
    """The sensor of the most recently opened open alert, else of any alert, else the first."""
    known = set(sensors)
    ranked = sorted(
        (a for a in alerts if a.sensor_id in known),
        key=lambda a: (a.state == "open", a.opened_at),
        reverse=True,
    )
    if ranked:
        return ranked[0].sensor_id
    return sensors[0] if sensors else None


def sensor_alerts(alerts: Iterable[Alert], sensor_id: str) -> list[Alert]:
    """The sensor's alerts, newest first."""
    return sorted(
        (a for a in alerts if a.sensor_id == sensor_id), key=lambda a: a.opened_at, reverse=True
    )


def current_alert(alerts: Sequence[Alert]) -> Alert | None:
    """Of one sensor's alerts (newest first): the open one, else the newest."""
    return next((a for a in alerts if a.state == "open"), alerts[0] if alerts else None)


def alert_feed_frame(
    alerts: Iterable[Alert],
    latest_ts: Mapping[str, int],
    sensor: str | None = None,
    state: str | None = None,
) -> pd.DataFrame:
    """Alerts newest first (by opening time), optionally only one sensor's or one state's.

    ``duration`` is closed − opened, or for an open alert the time so far (up to
    the sensor's newest score).
    """
    chosen = [
        a
        for a in alerts
        if (sensor is None or a.sensor_id == sensor) and (state is None or a.state == state)
    ]
    chosen.sort(key=lambda a: (a.opened_at, a.alert_id), reverse=True)
    rows = [
        (
            STATE_LABEL[a.state],
            a.sensor_id,
            _time(a.opened_at),
            _time(a.closed_at) if a.state == "closed" and a.closed_at is not None else pd.NaT,
            format_duration(alert_end_ms(a, latest_ts) - a.opened_at),
            a.peak_score,
            a.threshold,
            ", ".join(a.top_channels),
            a.alert_id,
        )
        for a in chosen
    ]
    frame = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    for column in ("opened", "closed"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def alert_spans(
    alerts: Iterable[Alert], sensor_id: str, latest_ts: Mapping[str, int], start_ms: int
) -> pd.DataFrame:
    """The sensor's alert periods that reach into the chart (from ``start_ms`` on), for shading.

    Spans are clipped to start at ``start_ms``; an open alert runs to the
    sensor's newest score.
    """
    rows = []
    for alert in alerts:
        if alert.sensor_id != sensor_id:
            continue
        end = alert_end_ms(alert, latest_ts)
        if end < start_ms:
            continue
        rows.append(
            (_time(max(alert.opened_at, start_ms)), _time(end), alert.state, alert.alert_id)
        )
    rows.sort(key=lambda r: r[0])
    frame = pd.DataFrame(rows, columns=["start", "end", "state", "alert_id"])
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def score_frame(points: Sequence[Point]) -> pd.DataFrame:
    """Score and threshold over time, for the reconstruction-error chart."""
    return pd.DataFrame(
        {
            "time": pd.to_datetime([p.ts for p in points], unit="ms", utc=True),
            "score": [p.score for p in points],
            "threshold": [p.threshold for p in points],
            "is_anomaly": [p.is_anomaly for p in points],
        }
    )


def values_frame(points: Sequence[Point], channels: Sequence[str] | None = None) -> pd.DataFrame:
    """Raw channel values in long form (time, channel, value), only ``channels`` if given."""
    wanted = None if channels is None else set(channels)
    times, names, values = [], [], []
    for point in points:
        for name, value in zip(point.channels, point.values, strict=True):
            if wanted is None or name in wanted:
                times.append(point.ts)
                names.append(name)
                values.append(value)
    return pd.DataFrame(
        {
            "time": pd.to_datetime(times, unit="ms", utc=True),
            "channel": names,
            "value": values,
        }
    )


def chart_channels(all_channels: Sequence[str], top: Sequence[str], limit: int) -> list[str]:
    """Which channels to draw: the alert's top channels first, then the rest, at most ``limit``."""
    ordered = [c for c in top if c in all_channels]
    ordered += [c for c in all_channels if c not in ordered]
    return ordered[:limit]


def recent(points: Sequence[Point], span_ms: int | None) -> list[Point]:
    """The points within ``span_ms`` of the newest one (all of them when ``span_ms`` is None)."""
    if span_ms is None or not points:
        return list(points)
    start = points[-1].ts - span_ms
    return [p for p in points if p.ts >= start]


def downsample(points: Sequence[Point], max_points: int) -> list[Point]:
    """At most ``max_points`` points: the highest-scoring point of each equal-count bucket.

    Keeping each bucket's maximum keeps every spike visible, which an every-n-th
    sample would not.
    """
    if len(points) <= max_points:
        return list(points)
    size = -(-len(points) // max_points)
    return [max(points[i : i + size], key=lambda p: p.score) for i in range(0, len(points), size)]


def _time(ms: int | None) -> pd.Timestamp:
    return pd.NaT if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")
