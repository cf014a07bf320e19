"""The page's layout, run by Streamlit's AppTest against an in-memory feed."""

import time
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from streamae.dashboard.buffer import MonitorLag
from streamae.dashboard.feed import FEED_KEY, MemoryFeed
from streamae.messages import Alert, Score

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
SENSORS = ("pump-1", "pump-2", "fan-3")


def build_feed(now_ms: int) -> MemoryFeed:
    """Three sensors, 60 s of scores; pump-2 runs hot from second 40 and has an open alert."""
    feed = MemoryFeed()
    for i in range(60):
        ts = now_ms - (60 - i) * 1000
        for sensor in SENSORS:
            hot = sensor == "pump-2" and i >= 40
            value = 2.5 if hot else 0.4
            feed.add_score(
                Score(
                    sensor,
                    ts,
                    {"pressure": 1.0 + i / 100, "temperature": 70.0},
                    value,
                    1.0,
                    hot,
                    {"pressure": value * 0.8, "temperature": value * 0.2},
                    "model-abc",
                ),
                published_ms=now_ms,
            )
    feed.add_alert(
        Alert(
            "fan-old",
            "fan-3",
            "open",
            now_ms - 55_000,
            None,
            1.3,
            1.0,
            ["temperature"],
            "model-abc",
        )
    )
    feed.add_alert(
        Alert(
            "fan-old",
            "fan-3",
            "closed",
            now_ms - 55_000,
            now_ms - 50_000,
            1.4,
            1.0,
            ["temperature"],
            "model-abc",
        )
    )
    feed.add_alert(
        Alert(
            "pump-hot",
            "pump-2",
            "open",
            now_ms - 17_000,
            None,
            2.5,
            1.0,
            ["pressure", "temperature"],
            "model-abc",
        )
    )
    return feed


def run_app(feed: MemoryFeed) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.session_state[FEED_KEY] = feed
    app.run()
    assert not app.exception, app.exception
    return app


def charts(app: AppTest) -> list:
    return [chart.proto for chart in app.get("vega_lite_chart")]


def chart_rows(chart) -> int:
    """Rows of the chart's largest dataset (the scores, not the alert spans)."""
    tables = [pa.ipc.open_stream(d.data.data).read_all() for d in chart.datasets]
    return max(t.num_rows for t in tables)


@pytest.fixture
def app() -> AppTest:
    return run_app(build_feed(int(time.time() * 1000)))


def test_overview_lists_every_sensor_alerting_first(app):
    overview = app.dataframe[0].value
    assert list(overview["sensor"]) == ["pump-2", "fan-3", "pump-1"]
    assert overview["status"].iloc[0] == "🔴 alerting"
    assert list(overview["open_alerts"]) == [1, 0, 0]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Sensors"] == "3"
    assert metrics["Alerting sensors"] == "1"
    assert metrics["Open alerts"] == "1"


def metrics(app: AppTest) -> dict[str, tuple[str, str]]:
    """Each metric tile's label -> (value, note under it)."""
    return {m.label: (m.value, m.proto.delta) for m in app.metric}


def test_monitor_rate_and_consumer_lag_show_in_the_overview():
    feed = build_feed(int(time.time() * 1000))
    feed.set_monitor(MonitorLag("streamae-monitor", "readings", lag=12_345, readings_per_s=98.76))
    shown = metrics(run_app(feed))
    assert shown["Monitor readings/s"] == ("98.8", "")
    assert shown["Consumer lag"] == ("12,345", "")


def test_a_group_without_offsets_is_said_plainly():
    feed = build_feed(int(time.time() * 1000))
    feed.set_monitor(MonitorLag("streamae-monitor", "readings", lag=500, has_group=False))
    app = run_app(feed)
    shown = metrics(app)
    assert shown["Monitor readings/s"] == ("—", "no monitor group yet")
    assert shown["Consumer lag"] == ("—", "no monitor group yet")
    lag_tile = next(m for m in app.metric if m.label == "Consumer lag")
    assert "500 readings are waiting" in lag_tile.proto.help


@pytest.mark.parametrize(
    "monitor",
    [
        MonitorLag(),  # not sampled yet
        MonitorLag("streamae-monitor", "readings", lag=7),  # one sample: no rate yet
        MonitorLag("streamae-monitor", "readings", error="Kafka at 127.0.0.1:9092 is down"),
    ],
    ids=["not-sampled", "one-sample", "error"],
)
def test_unknown_figures_show_a_dash(monitor):
    feed = build_feed(int(time.time() * 1000))
    feed.set_monitor(monitor)
    app = run_app(feed)
    shown = metrics(app)
    assert shown["Monitor readings/s"] == ("—", "")
    assert shown["Consumer lag"] == ("—" if monitor.lag is None else "7", "")
    if monitor.error:
        lag_tile = next(m for m in app.metric if m.label == "Consumer lag")
        assert monitor.error in lag_tile.proto.help


def test_sensor_view_defaults_to_the_alerting_sensor_with_its_charts_and_top_channels(app):
    assert app.selectbox(key="sensor").value == "pump-2"
    assert app.selectbox(key="alert").value == "pump-hot"
    score_chart, *channel_charts = charts(app)
    assert score_chart.alt == "Reconstruction error of pump-2 with its threshold and alert periods"
    assert [c.alt for c in channel_charts] == [
        "Raw pressure values of pump-2",
        "Raw temperature values of pump-2",
    ]
    assert chart_rows(score_chart) == 60
    assert [chart_rows(c) for c in channel_charts] == [60, 60]
    text = " ".join(m.value for m in app.markdown)
    assert "**Top channels:** `pressure`, `temperature`" in text


def test_choosing_another_sensor_redraws_the_sensor_view(app):
    app.selectbox(key="sensor").set_value("pump-1").run()
    assert not app.exception
    assert charts(app)[0].alt.startswith("Reconstruction error of pump-1")
    assert "no alert for this sensor" in " ".join(c.value for c in app.caption)
    # The selection survives the next refresh.
    app.run()
    assert app.selectbox(key="sensor").value == "pump-1"


def test_span_and_alert_choices(app):
    app.button_group(key="span").set_value("5 min").run()
    assert chart_rows(charts(app)[0]) == 60
    app.selectbox(key="sensor").set_value("fan-3").run()
    assert app.selectbox(key="alert").value == "fan-old"
    assert charts(app)[0].alt.startswith("Reconstruction error of fan-3")
    assert "alert closed for 5s" in " ".join(m.value for m in app.markdown)


def test_alert_feed_is_newest_first_and_filters_by_state_and_sensor(app):
    feed = app.dataframe[1].value
    assert list(feed["alert_id"]) == ["pump-hot", "fan-old"]
    assert list(feed["state"]) == ["🔴 open", "⚪ closed"]
    assert list(feed["duration"]) == ["16s", "5s"]
    assert list(feed["top_channels"]) == ["pressure, temperature", "temperature"]

    app.button_group(key="feed_state").set_value("Closed").run()
    assert list(app.dataframe[1].value["alert_id"]) == ["fan-old"]
    app.button_group(key="feed_state").set_value("All").run()
    app.selectbox(key="feed_sensor").set_value("pump-2").run()
    assert list(app.dataframe[1].value["alert_id"]) == ["pump-hot"]


def test_unreachable_broker_is_said_plainly():
    feed = build_feed(int(time.time() * 1000))
    feed.mark_unreachable("connection refused")
    app = run_app(feed)
    [error] = app.error
    assert error.value.startswith("in-memory feed is unreachable — retrying; last data ")
    # What was read before stays on the page.
    assert len(app.dataframe[0].value) == 3


def test_empty_feed_says_it_is_waiting():
    app = run_app(MemoryFeed())
    assert "waiting for the first scores" in app.info[0].value
    assert app.dataframe[0].value.empty
    assert not charts(app)
    assert "No sensor has reported a score yet." in [c.value for c in app.caption]


def test_a_thousand_sensors_fit_in_one_table():
    now_ms = int(time.time() * 1000)
    feed = MemoryFeed()
    sensors = [f"sensor-{n:04d}" for n in range(1000)]
    feed.add_records(
        [
            (
                Score(s, now_ms - (20 - i) * 1000, {"a": 1.0}, 0.5, 1.0, False, {"a": 0.5}, "m"),
                now_ms,
            )
            for i in range(20)
            for s in sensors
        ],
        [
            Alert(f"alert-{s}", s, "open", now_ms - 5000, None, 2.0, 1.0, ["a"], "m")
            for s in sensors[::100]
        ],
    )
    app = run_app(feed)
    overview = app.dataframe[0].value
    assert len(overview) == 1000
    assert list(overview["sensor"][:10]) == sensors[::100]  # the alerting ones on top
    assert {m.label: m.value for m in app.metric}["Open alerts"] == "10"
    assert app.selectbox(key="sensor").value in sensors[::100]
