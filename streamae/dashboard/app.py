"""The live dashboard page: ``streamae dashboard`` runs it with ``streamlit run``.

The page reads one process-wide feed (a background Kafka reader held by
``st.cache_resource``) and redraws its live part once a second inside a
fragment, so the user's selections survive every refresh. Tests put a
``MemoryFeed`` in ``st.session_state[FEED_KEY]`` instead.

Layout, top to bottom: freshness metrics, with the monitor group's commit rate
and lag; the sensors table beside the alert feed; the chosen sensor's
reconstruction error (threshold dashed, alerts shaded) with its raw channels
below on the same time axis.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from streamae.config import Settings
from streamae.dashboard import shaping
from streamae.dashboard.buffer import Snapshot
from streamae.dashboard.charts import channel_chart, score_chart
from streamae.dashboard.feed import FEED_KEY, Feed, KafkaFeed
from streamae.exceptions import StreamaeError
from streamae.messages import Alert

REFRESH_S = 1.0
MAX_CHART_POINTS = 2000
MAX_CHART_CHANNELS = 6
TABLE_HEIGHT = 320
SPANS = {"5 min": 300_000, "15 min": 900_000, "1 h": 3_600_000, "All": None}
ALL = "All sensors"
STATES = ["All", "Open", "Closed"]

# The feed says "unreachable, retrying" once per attempt; kafka-python would add a
# warning for every failed connection while the broker is down.
logging.getLogger("kafka").setLevel(logging.ERROR)


@st.cache_resource(show_spinner=False, on_release=lambda feed: feed.stop())
def shared_feed() -> KafkaFeed:
    """The one Kafka reader of this process, shared by every browser session."""
    return KafkaFeed(Settings.load()).start()


def get_feed() -> Feed:
    injected = st.session_state.get(FEED_KEY)
    return injected if injected is not None else shared_feed()


def main() -> None:
    st.set_page_config(page_title="streamae · live anomaly monitor", page_icon="📈", layout="wide")
    # Less empty space above the title: the page is meant to fit one screen.
    st.html("<style>.stMainBlockContainer {padding-top: 2.5rem;}</style>")
    st.markdown("### 📈 streamae · live anomaly monitor")
    try:
        feed = get_feed()
    except StreamaeError as exc:
        st.error(f"The dashboard cannot start: {exc}")
        st.stop()
    live(feed)


@st.fragment(run_every=REFRESH_S)
def live(feed: Feed) -> None:
    """Everything that changes with the data; reruns on its own every second."""
    snap = feed.snapshot(st.session_state.get("sensor"))
    sensors = sorted(snap.latest)
    if sensors and st.session_state.get("sensor") not in sensors:
        st.session_state["sensor"] = shaping.default_sensor(sensors, snap.alerts)
        snap = feed.snapshot(st.session_state["sensor"])
    overview = shaping.overview_frame(snap.latest, snap.alerts, snap.now_ms)
    latest_ts = {s: item.score.ts for s, item in snap.latest.items()}
    show_status(snap, overview)
    left, right = st.columns([1, 1], gap="medium")
    with left:
        show_overview(overview)
    with right:
        show_alert_feed(snap, latest_ts)
    show_sensor(snap, sensors, overview, latest_ts)


def show_status(snap: Snapshot, overview: pd.DataFrame) -> None:
    problem = snap.status.problem(snap.now_ms)
    if problem:
        st.error(problem, icon="🔌")
    elif not snap.latest:
        st.info(f"Reading from {snap.status.source}; waiting for the first scores.", icon="⏳")
    newest = max((item.published_ms for item in snap.latest.values()), default=None)
    open_count = sum(1 for a in snap.alerts if a.state == "open")
    alerting = int((overview["status"] == shaping.STATUS_LABEL[shaping.ALERTING]).sum())
    newest_text = "—" if newest is None else shaping.format_duration(snap.now_ms - newest) + " ago"
    rate, lag = shaping.monitor_metrics(snap.monitor)
    tiles = {
        "Sensors": shaping.MetricText(str(len(snap.latest))),
        "Alerting sensors": shaping.MetricText(str(alerting)),
        "Open alerts": shaping.MetricText(str(open_count)),
        "Scores / s": shaping.MetricText(f"{snap.scores_per_s:,.1f}"),
        "Newest score": shaping.MetricText(newest_text),
        "Monitor readings/s": rate,
        "Consumer lag": lag,
    }
    for col, (label, text) in zip(st.columns(len(tiles)), tiles.items(), strict=True):
        # A note is a plain gray line, not a change with an arrow; "stretch" keeps the
        # tiles of the row equally tall when only some have a note.
        col.metric(
            label,
            text.value,
            text.note,
            delta_color="off",
            delta_arrow="off",
            help=text.help,
            border=True,
            height="stretch",
        )


def show_overview(overview: pd.DataFrame) -> None:
    st.markdown("#### Sensors")
    st.dataframe(
        overview,
        hide_index=True,
        height=min(TABLE_HEIGHT, 35 * (len(overview) + 1) + 3),
        key="overview",
        column_config={
            "status": st.column_config.TextColumn("Status", width=120),
            "sensor": st.column_config.TextColumn("Sensor"),
            "score": st.column_config.NumberColumn("Score", format="%.3f", width=70),
            "threshold": st.column_config.NumberColumn("Threshold", format="%.3f", width=80),
            "ratio": st.column_config.ProgressColumn(
                "Score / threshold", format="%.2f", min_value=0.0, max_value=2.0, width=130
            ),
            "last_score": st.column_config.TextColumn("Last score", width=85),
            "open_alerts": st.column_config.NumberColumn("Alerts", help="open alerts", width=60),
            "model": st.column_config.TextColumn("Model"),
        },
    )


def show_alert_feed(snap: Snapshot, latest_ts: dict[str, int]) -> None:
    st.markdown("#### Alerts")
    with_alerts = sorted({a.sensor_id for a in snap.alerts})
    if st.session_state.get("feed_sensor") not in [ALL, *with_alerts]:
        st.session_state["feed_sensor"] = ALL
    pick, state_col = st.columns([3, 2])
    sensor = pick.selectbox(
        "Sensor", [ALL, *with_alerts], key="feed_sensor", label_visibility="collapsed"
    )
    state = state_col.segmented_control(
        "State", STATES, default="All", key="feed_state", label_visibility="collapsed"
    )
    frame = shaping.alert_feed_frame(
        snap.alerts,
        latest_ts,
        sensor=None if sensor == ALL else sensor,
        state=None if state in (None, "All") else state.lower(),
    )
    if frame.empty:
        st.caption("No alerts match." if snap.alerts else "No alerts in the buffered data.")
        return
    st.dataframe(
        frame,
        hide_index=True,
        height=min(TABLE_HEIGHT - 50, 35 * (len(frame) + 1) + 3),
        key="alert_feed",
        column_order=[c for c in frame.columns if c != "threshold"],
        column_config={
            "state": st.column_config.TextColumn("State", width=90),
            "sensor": st.column_config.TextColumn("Sensor"),
            "opened": st.column_config.DatetimeColumn("Opened (UTC)", format="MM-DD HH:mm:ss"),
            "closed": st.column_config.DatetimeColumn("Closed (UTC)", format="MM-DD HH:mm:ss"),
            "duration": st.column_config.TextColumn("Duration", width=80),
            "peak_score": st.column_config.NumberColumn("Peak", format="%.3f", width=65),
            "top_channels": st.column_config.TextColumn("Top channels"),
            "alert_id": st.column_config.TextColumn("Alert id"),
        },
    )


def show_sensor(
    snap: Snapshot, sensors: list[str], overview: pd.DataFrame, latest_ts: dict[str, int]
) -> None:
    st.markdown("#### Sensor")
    if not sensors:
        st.caption("No sensor has reported a score yet.")
        return
    status = dict(zip(overview["sensor"], overview["status"], strict=True))
    pick, alert_col, span_col = st.columns([2, 3, 2])
    sensor = pick.selectbox(
        "Sensor", sensors, key="sensor", format_func=lambda s: f"{status.get(s, '')[:1]} {s}"
    )
    with alert_col:
        alert = choose_alert(shaping.sensor_alerts(snap.alerts, sensor))
    span_label = span_col.segmented_control("Span", list(SPANS), default="15 min", key="span")
    points = shaping.recent(snap.series, SPANS.get(span_label or "All"))
    if not points:
        st.caption("No buffered scores for this sensor yet.")
        return
    shown = shaping.downsample(points, MAX_CHART_POINTS)
    domain = (points[0].ts, points[-1].ts)
    spans = shaping.alert_spans(snap.alerts, sensor, latest_ts, points[0].ts)
    describe_alert(sensor, alert, latest_ts)
    st.altair_chart(
        score_chart(shaping.score_frame(shown), spans, alert.alert_id if alert else None, domain),
        width="stretch",
        alt=f"Reconstruction error of {sensor} with its threshold and alert periods",
    )
    top = list(alert.top_channels) if alert else []
    all_channels = shown[-1].channels
    channels = shaping.chart_channels(all_channels, top, MAX_CHART_CHANNELS)
    shown_note = (
        f", {len(channels)} of {len(all_channels)}" if len(channels) < len(all_channels) else ""
    )
    st.caption(f"**{sensor}** · raw channel values{shown_note}")
    values = shaping.values_frame(shown, channels)
    for i, channel in enumerate(channels):
        st.altair_chart(
            channel_chart(
                values.loc[values["channel"] == channel, ["time", "value"]],
                channel,
                channel in top,
                domain,
                spans,
                last=i == len(channels) - 1,
            ),
            width="stretch",
            alt=f"Raw {channel} values of {sensor}",
        )


def choose_alert(alerts: list[Alert]) -> Alert | None:
    """The alert the user picked for this sensor, else its open or newest one."""
    if not alerts:
        st.selectbox("Alert", ["no alert in the buffered data"], key="no_alert", disabled=True)
        return None
    by_id = {a.alert_id: a for a in alerts}
    if st.session_state.get("alert") not in by_id:
        st.session_state["alert"] = shaping.current_alert(alerts).alert_id
    chosen = st.selectbox(
        "Alert", list(by_id), key="alert", format_func=lambda i: alert_label(by_id[i])
    )
    return by_id[chosen]


def alert_label(alert: Alert) -> str:
    if alert.state == "open":
        return f"🔴 open since {_clock(alert.opened_at)} · peak {alert.peak_score:.3g}"
    return f"⚪ {_clock(alert.opened_at)} – {_clock(alert.closed_at)} · peak {alert.peak_score:.3g}"


def describe_alert(sensor: str, alert: Alert | None, latest_ts: dict[str, int]) -> None:
    """One line over the chart: whose error it is, and the chosen alert's top channels."""
    line = f"**{sensor}** · reconstruction error vs threshold, alert periods shaded"
    if alert is None:
        st.caption(f"{line} · no alert for this sensor in the buffered data")
        return
    duration = shaping.format_duration(shaping.alert_end_ms(alert, latest_ts) - alert.opened_at)
    channels = ", ".join(f"`{c}`" for c in alert.top_channels) or "—"
    st.caption(line)
    st.markdown(
        f"**Top channels:** {channels} &nbsp;·&nbsp; alert {alert.state} for {duration}, "
        f"peak {alert.peak_score:.3g} vs threshold {alert.threshold:.3g}"
    )


def _clock(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M:%S")


if __name__ == "__main__":
    main()
