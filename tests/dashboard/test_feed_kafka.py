"""KafkaFeed against real Apache Kafka: look-back, folding, new topics and partitions,
and recovery after the broker goes away."""

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from kafka.admin import NewPartitions

from streamae.config import Settings
from streamae.dashboard.buffer import Snapshot
from streamae.dashboard.feed import KafkaFeed
from streamae.kafka.broker import LocalBroker
from streamae.kafka.clients import ensure_topics, make_admin, make_producer
from streamae.messages import Alert, Score, encode

pytestmark = pytest.mark.kafka

HOUR_MS = 3_600_000


def score(sensor: str, ts: int, value: float = 0.5) -> Score:
    return Score(sensor, ts, {"a": 1.0}, value, 1.0, value > 1.0, {"a": value}, "m")


def alert(alert_id: str, sensor: str, state: str, opened: int, closed: int | None = None) -> Alert:
    return Alert(alert_id, sensor, state, opened, closed, 2.0, 1.0, ["a"], "m")


def produce(settings: Settings, topic: str, messages, timestamp_ms=None, partition=None) -> None:
    producer = make_producer(settings)
    try:
        for message in messages:
            producer.send(
                topic,
                key=message.sensor_id.encode(),
                value=encode(message),
                timestamp_ms=timestamp_ms,
                partition=partition,
            )
        producer.flush(30)
    finally:
        producer.close()


def wait_for(feed: KafkaFeed, check: Callable[[Snapshot], bool], what: str, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        snap = feed.snapshot()
        if check(snap):
            return snap
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; feed status: {snap.status}")
        time.sleep(0.2)


@pytest.fixture
def running() -> Iterator[Callable[[Settings], KafkaFeed]]:
    feeds: list[KafkaFeed] = []

    def start(settings: Settings) -> KafkaFeed:
        feeds.append(KafkaFeed(settings).start())
        return feeds[-1]

    yield start
    for feed in feeds:
        feed.stop()
        assert not feed.alive


def test_reads_the_look_back_span_and_folds_alerts(kafka_settings, running):
    settings = kafka_settings.replace(dashboard_lookback_s=600.0)
    ensure_topics(settings, {settings.scores_topic: 2, settings.alerts_topic: 1})
    now = int(time.time() * 1000)
    produce(settings, settings.scores_topic, [score("old", 1)], timestamp_ms=now - HOUR_MS)
    produce(settings, settings.scores_topic, [score(f"s{i}", now + i) for i in range(6)])
    produce(
        settings,
        settings.alerts_topic,
        [alert("x", "s1", "open", now), alert("x", "s1", "closed", now, now + 5000)],
    )

    feed = running(settings)
    snap = wait_for(feed, lambda s: len(s.latest) == 6 and s.alerts, "6 sensors and the alert")

    assert sorted(snap.latest) == [f"s{i}" for i in range(6)]  # "old" is beyond the look-back
    assert [(a.alert_id, a.state, a.closed_at) for a in snap.alerts] == [
        ("x", "closed", now + 5000)
    ]
    assert snap.status.reachable and snap.status.problem(snap.now_ms) is None
    assert feed.snapshot("s3").series[0].ts == now + 3


def test_picks_up_topics_and_partitions_created_later(kafka_settings, running):
    settings = kafka_settings
    feed = running(settings)  # neither topic exists yet
    ensure_topics(settings, {settings.scores_topic: 1})
    produce(settings, settings.scores_topic, [score("first", int(time.time() * 1000))])
    wait_for(feed, lambda s: "first" in s.latest, "a score on a topic created after the start")

    admin = make_admin(settings)
    try:
        admin.create_partitions({settings.scores_topic: NewPartitions(total_count=2)})
    finally:
        admin.close()
    produce(settings, settings.scores_topic, [score("second", 2)], partition=1)
    ensure_topics(settings, {settings.alerts_topic: 1})
    produce(settings, settings.alerts_topic, [alert("y", "first", "open", 1)])

    snap = wait_for(
        feed,
        lambda s: "second" in s.latest and s.alerts,
        "a score on a new partition and an alert on a new topic",
    )
    assert [a.alert_id for a in snap.alerts] == ["y"]


def test_shows_only_committed_results_of_an_exactly_once_monitor(kafka_settings, running):
    settings = kafka_settings
    ensure_topics(settings, {settings.scores_topic: 1})
    now = int(time.time() * 1000)
    producer = make_producer(settings, transactional_id=f"{settings.group_id}-txn")
    try:
        producer.init_transactions()
        for name, commit in (("aborted", False), ("committed", True)):
            producer.begin_transaction()
            producer.send(settings.scores_topic, key=name.encode(), value=encode(score(name, now)))
            producer.flush(30)
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()

    snap = wait_for(running(settings), lambda s: "committed" in s.latest, "the committed score")
    assert sorted(snap.latest) == ["committed"]


def test_says_when_the_broker_is_unreachable(running):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    feed = running(Settings.load(env={}, bootstrap_servers=f"127.0.0.1:{port}"))
    snap = wait_for(feed, lambda s: not s.status.reachable, "the feed to report the broker down")
    assert snap.status.problem(snap.now_ms) == (
        f"Kafka at 127.0.0.1:{port} is unreachable — retrying; no data received yet"
    )
    snap = wait_for(feed, lambda s: s.monitor.error, "the lag figures to say why they are unknown")
    assert f"127.0.0.1:{port} is not reachable" in snap.monitor.error
    assert (snap.monitor.lag, snap.monitor.readings_per_s) == (None, None)


@pytest.mark.slow
def test_recovers_by_itself_when_the_broker_comes_back(tmp_path, running):
    broker = LocalBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    try:
        settings = Settings.load(env={}, bootstrap_servers=broker.bootstrap)
        ensure_topics(settings, {settings.scores_topic: 1, settings.alerts_topic: 1})
        produce(settings, settings.scores_topic, [score("before", int(time.time() * 1000))])
        feed = running(settings)
        wait_for(feed, lambda s: "before" in s.latest, "the first score")

        wait_for(feed, lambda s: s.monitor.lag is not None, "a lag sample")

        broker.stop()
        snap = wait_for(feed, lambda s: not s.status.reachable, "the feed to notice the outage")
        assert "is unreachable — retrying; last data" in snap.status.problem(snap.now_ms)
        snap = wait_for(feed, lambda s: s.monitor.error, "the lag figures to turn unknown")
        assert snap.monitor.lag is None

        broker.start()
        produce(settings, settings.scores_topic, [score("after", int(time.time() * 1000))])
        snap = wait_for(feed, lambda s: "after" in s.latest, "a score after the restart", 90)
        assert snap.status.reachable
        assert [p.ts for p in feed.snapshot("before").series] == [snap.latest["before"].score.ts]
        wait_for(feed, lambda s: s.monitor.lag is not None, "a lag sample after the restart")
    finally:
        broker.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
