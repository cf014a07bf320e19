"""The bounded, thread-safe store behind every feed."""

import threading

from streamae.dashboard.buffer import FeedState, FeedStatus, RateMeter, fold_alert
from streamae.messages import Alert, Score


class Clock:
    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def score(sensor, ts, value=0.5, channels=("a", "b")):
    values = {c: float(i) for i, c in enumerate(channels)}
    return Score(sensor, ts, values, value, 1.0, value > 1.0, {c: 0.0 for c in channels}, "m")


def alert(alert_id, state, opened=0, closed=None, sensor="s"):
    return Alert(alert_id, sensor, state, opened, closed, 2.0, 1.0, ["a"], "m")


def test_capacity_is_global_and_evicts_the_oldest_arrival_first():
    state = FeedState("test", capacity=3)
    for sensor, ts in [("x", 1), ("y", 1), ("x", 2), ("y", 2), ("x", 3)]:
        state.add_score(score(sensor, ts), published_ms=0)

    assert [p.ts for p in state.snapshot("x").series] == [2, 3]
    assert [p.ts for p in state.snapshot("y").series] == [2]
    # The newest score of each sensor is kept even when its history was evicted.
    assert {s: item.score.ts for s, item in state.snapshot().latest.items()} == {"x": 3, "y": 2}


def test_points_keep_channel_names_and_values_in_order():
    state = FeedState("test", capacity=10)
    state.add_score(score("x", 1, channels=("p", "q")))
    state.add_score(score("x", 2, channels=("p", "q", "r")))

    first, second = state.snapshot("x").series
    assert (first.channels, first.values) == (("p", "q"), (0.0, 1.0))
    assert (second.channels, second.values) == (("p", "q", "r"), (0.0, 1.0, 2.0))
    assert state.snapshot().series == []  # no sensor asked for, no history copied


def test_latest_ignores_an_older_score_arriving_late():
    state = FeedState("test", capacity=10)
    state.add_score(score("x", 5, value=0.3), published_ms=100)
    state.add_score(score("x", 4, value=0.9), published_ms=200)
    latest = state.snapshot().latest["x"]
    assert (latest.score.ts, latest.score.score, latest.published_ms) == (5, 0.3, 100)


def test_alerts_fold_by_id_and_the_bound_forgets_closed_alerts_first():
    state = FeedState("test", capacity=10, alert_capacity=2)
    state.add_alert(alert("a", "open"))
    state.add_alert(alert("b", "open"))
    state.add_alert(alert("b", "closed", closed=10))
    assert [(a.alert_id, a.state) for a in state.snapshot().alerts] == [
        ("a", "open"),
        ("b", "closed"),
    ]

    state.add_alert(alert("c", "open"))
    assert [(a.alert_id, a.state) for a in state.snapshot().alerts] == [
        ("a", "open"),
        ("c", "open"),
    ]


def test_fold_alert_closed_wins():
    opened, closed = alert("a", "open"), alert("a", "closed", closed=5)
    assert fold_alert(None, opened) is opened
    assert fold_alert(opened, closed) is closed
    assert fold_alert(closed, opened) is closed


def test_rate_counts_whole_seconds_before_now():
    meter = RateMeter(window_s=10)
    for second in range(100, 110):
        meter.add(second * 1000 + 500, count=3)
    meter.add(110_100, count=1000)  # the current second is incomplete: not counted yet
    assert meter.rate(110_900) == 3.0
    assert meter.rate(130_000) == 0.0


def test_status_says_plainly_when_the_source_is_unreachable():
    clock = Clock(100.0)
    state = FeedState("Kafka at h:1", capacity=10, clock=clock)
    assert state.snapshot().status.problem(100_000) is None

    state.mark_unreachable("refused")
    assert state.snapshot().status.problem(100_000) == (
        "Kafka at h:1 is unreachable — retrying; no data received yet"
    )
    state.add_score(score("x", 1))  # data arriving means the source answers again
    assert state.snapshot().status.reachable
    state.mark_unreachable("refused")
    clock.now_s = 142.5
    snap = state.snapshot()
    assert snap.status.problem(snap.now_ms) == (
        "Kafka at h:1 is unreachable — retrying; last data 42 s ago"
    )
    state.mark_reachable()
    assert state.snapshot().status == FeedStatus("Kafka at h:1", True, None, 100_000)


def test_concurrent_writer_and_readers_see_consistent_bounded_snapshots():
    state = FeedState("test", capacity=500)
    done = threading.Event()

    def write():
        for i in range(5000):
            state.add_records([(score(f"s{i % 7}", i), 0)], [])
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        snap = state.snapshot("s3")
        assert all(p.ts % 7 == 3 for p in snap.series)
        assert len(snap.series) <= 500
    writer.join()
    total = sum(len(state.snapshot(f"s{k}").series) for k in range(7))
    assert total == 500
