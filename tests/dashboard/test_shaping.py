"""The page's rules, from hand-built inputs to exact outputs."""

import pandas as pd
import pytest

from streamae.dashboard import shaping
from streamae.dashboard.buffer import Latest, Point
from streamae.messages import Alert, Score


def score(sensor, ts, value, threshold=1.0, is_anomaly=None, model="m1"):
    flagged = value > threshold if is_anomaly is None else is_anomaly
    return Score(sensor, ts, {"a": 1.0, "b": 2.0}, value, threshold, flagged, {"a": 0.1}, model)


def alert(alert_id, sensor, state, opened, closed=None, peak=2.0, top=("a",)):
    return Alert(alert_id, sensor, state, opened, closed, peak, 1.0, list(top), "m1")


def point(ts, value, threshold=1.0, channels=("a", "b"), values=(1.0, 2.0)):
    return Point(ts, value, threshold, value > threshold, channels, values)


def utc(ms):
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def test_fold_alerts_keeps_one_record_per_id_and_closed_wins_in_any_order():
    opened = alert("x", "s1", "open", 1000)
    closed = alert("x", "s1", "closed", 1000, 5000, peak=3.0, top=("b", "a"))
    other = alert("y", "s2", "open", 2000)

    assert shaping.fold_alerts([opened, closed, other]) == {"x": closed, "y": other}
    assert shaping.fold_alerts([closed, opened]) == {"x": closed}  # a late "open" never reopens
    assert shaping.fold_alerts([opened, opened]) == {"x": opened}


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (-5, "0s"),
        (45_999, "45s"),
        (185_000, "3m 05s"),
        (7_440_000, "2h 04m"),
        (90_000_000, "1d 01h"),
    ],
)
def test_format_duration(ms, text):
    assert shaping.format_duration(ms) == text


def test_alert_end_is_closed_at_or_the_sensors_newest_score_for_an_open_alert():
    latest_ts = {"s1": 9000}
    assert shaping.alert_end_ms(alert("x", "s1", "closed", 1000, 4000), latest_ts) == 4000
    assert shaping.alert_end_ms(alert("y", "s1", "open", 1000), latest_ts) == 9000
    # No score seen for the sensor: the open alert has lasted 0 so far.
    assert shaping.alert_end_ms(alert("z", "s9", "open", 1000), latest_ts) == 1000


def test_overview_sorts_alerting_first_then_by_score_over_threshold():
    latest = {
        "calm": Latest(score("calm", 10, 0.2), published_ms=9000),
        "hot": Latest(score("hot", 10, 0.9), published_ms=8000),
        "over": Latest(score("over", 10, 1.5), published_ms=10_000),
        "alarm": Latest(score("alarm", 10, 0.1), published_ms=10_000),
    }
    alerts = [alert("x", "alarm", "open", 5), alert("y", "calm", "closed", 1, 3)]

    frame = shaping.overview_frame(latest, alerts, now_ms=10_000)

    assert list(frame.columns) == shaping.OVERVIEW_COLUMNS
    assert list(frame["sensor"]) == ["alarm", "over", "hot", "calm"]
    assert list(frame["status"]) == [
        "🔴 alerting",
        "🟠 above threshold",
        "🟢 normal",
        "🟢 normal",
    ]
    assert list(frame["open_alerts"]) == [1, 0, 0, 0]
    assert list(frame["last_score"]) == ["0s ago", "0s ago", "2s ago", "1s ago"]
    assert list(frame["ratio"]) == pytest.approx([0.1, 1.5, 0.9, 0.2])


def test_overview_ties_sort_by_sensor_id_and_empty_input_gives_the_columns():
    latest = {s: Latest(score(s, 1, 0.5), 0) for s in ("b", "c", "a")}
    assert list(shaping.overview_frame(latest, [], 0)["sensor"]) == ["a", "b", "c"]
    assert list(shaping.overview_frame({}, [], 0).columns) == shaping.OVERVIEW_COLUMNS


def test_default_sensor_prefers_the_newest_open_alert_then_any_alert_then_the_first():
    sensors = ["a", "b", "c"]
    assert shaping.default_sensor(sensors, []) == "a"
    assert shaping.default_sensor([], []) is None
    closed_late = alert("x", "b", "closed", 900, 950)
    assert shaping.default_sensor(sensors, [closed_late]) == "b"
    open_early = alert("y", "c", "open", 100)
    assert shaping.default_sensor(sensors, [closed_late, open_early]) == "c"
    assert shaping.default_sensor(["a"], [open_early]) == "a"  # alerts of unknown sensors ignored


def test_current_alert_is_the_open_one_else_the_newest():
    newest_closed = alert("n", "s", "closed", 500, 600)
    older_open = alert("o", "s", "open", 100)
    ordered = shaping.sensor_alerts([older_open, alert("z", "t", "open", 9), newest_closed], "s")
    assert ordered == [newest_closed, older_open]
    assert shaping.current_alert(ordered) == older_open
    assert shaping.current_alert([newest_closed]) == newest_closed
    assert shaping.current_alert([]) is None


def test_alert_feed_is_newest_first_with_durations_and_filters():
    alerts = [
        alert("old", "s1", "closed", 1000, 61_000, peak=4.0, top=("b", "a")),
        alert("new", "s2", "open", 5000, peak=2.5),
    ]
    latest_ts = {"s2": 20_000}

    frame = shaping.alert_feed_frame(alerts, latest_ts)

    assert list(frame.columns) == shaping.ALERT_COLUMNS
    assert list(frame["alert_id"]) == ["new", "old"]
    assert list(frame["state"]) == ["🔴 open", "⚪ closed"]
    assert list(frame["duration"]) == ["15s", "1m 00s"]
    assert list(frame["top_channels"]) == ["a", "b, a"]
    assert frame["opened"].tolist() == [utc(5000), utc(1000)]
    assert pd.isna(frame["closed"].iloc[0]) and frame["closed"].iloc[1] == utc(61_000)
    assert list(shaping.alert_feed_frame(alerts, latest_ts, sensor="s1")["alert_id"]) == ["old"]
    assert list(shaping.alert_feed_frame(alerts, latest_ts, state="open")["alert_id"]) == ["new"]
    assert shaping.alert_feed_frame(alerts, latest_ts, sensor="s1", state="open").empty


def test_alert_spans_cover_the_sensors_alerts_clipped_to_the_chart():
    alerts = [
        alert("gone", "s", "closed", 100, 400),  # ended before the chart starts
        alert("cut", "s", "closed", 800, 1500),  # began before: clipped
        alert("now", "s", "open", 2000),  # still open: runs to the newest score
        alert("else", "t", "open", 1000),  # another sensor
    ]

    spans = shaping.alert_spans(alerts, "s", {"s": 3000}, start_ms=1000)

    assert spans.to_dict("records") == [
        {"start": utc(1000), "end": utc(1500), "state": "closed", "alert_id": "cut"},
        {"start": utc(2000), "end": utc(3000), "state": "open", "alert_id": "now"},
    ]
    assert shaping.alert_spans([], "s", {}, 0).empty


def test_score_and_values_frames():
    points = [point(1000, 0.5), point(2000, 1.5, values=(3.0, 4.0))]

    scores = shaping.score_frame(points)
    assert scores.to_dict("list") == {
        "time": [utc(1000), utc(2000)],
        "score": [0.5, 1.5],
        "threshold": [1.0, 1.0],
        "is_anomaly": [False, True],
    }
    values = shaping.values_frame(points, ["b"])
    assert values.to_dict("list") == {
        "time": [utc(1000), utc(2000)],
        "channel": ["b", "b"],
        "value": [2.0, 4.0],
    }
    assert len(shaping.values_frame(points)) == 4


def test_chart_channels_put_top_channels_first_and_cap_the_count():
    assert shaping.chart_channels(["a", "b", "c", "d"], ["c", "zz"], 3) == ["c", "a", "b"]
    assert shaping.chart_channels(["a", "b"], [], 6) == ["a", "b"]


def test_recent_and_downsample_keep_the_newest_span_and_every_spike():
    points = [point(ts, 0.1) for ts in range(0, 10_000, 1000)]
    points[3] = point(3000, 9.0)
    assert [p.ts for p in shaping.recent(points, 2000)] == [7000, 8000, 9000]
    assert shaping.recent(points, None) == points

    thinned = shaping.downsample(points, 4)
    assert len(thinned) == 4
    assert max(p.score for p in thinned) == 9.0
    assert [p.ts for p in thinned] == [0, 3000, 6000, 9000]
    assert shaping.downsample(points, 100) == points
