"""The monitor loop against the real broker, run in a thread of the test process."""

from __future__ import annotations

import base64
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from streamae.detectors.zscore import ZScoreDetector
from streamae.exceptions import KafkaUnavailable
from streamae.messages import Reading, decode_alert, decode_dead_letter, decode_score
from streamae.monitor.outputs import MAX_DEAD_LETTER_RAW
from streamae.monitor.service import Monitor
from streamae.tables import SensorSeries

from .conftest import monitor_thread
from .scenario import ALERT_SETTINGS, DetectorSpec, match_alerts, spike_run

pytestmark = pytest.mark.kafka

SPEC = DetectorSpec()


def wait_for(predicate, timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_every_simulated_spike_event_opens_exactly_one_alert(monitor_settings, kio):
    settings = monitor_settings.replace(**ALERT_SETTINGS)
    run = spike_run(SPEC, streamed=2000)
    kio.produce_readings(run.readings)
    with monitor_thread(settings, SPEC.registry()):
        kio.wait_consumed(settings.group_id, settings.readings_topic)
    alerts = [decode_alert(r.value) for r in kio.read(settings.alerts_topic)]
    scores = kio.read(settings.scores_topic)
    per_event, unmatched = match_alerts(alerts, run.events)
    opened = [a for a in alerts if a.state == "open"]
    print(
        f"\nsimulator → monitor: {len(run.readings)} readings, {len(scores)} scores, "
        f"{len(run.expected)} spike events expected, {len(opened)} alerts opened, "
        f"{sum(1 for e in run.expected if run.events.index(e) in per_event)} events alerted, "
        f"{len(unmatched)} alerts outside events"
    )
    for event in run.expected:
        got = per_event.get(run.events.index(event), [])
        assert len(got) == 1, f"{event}: {len(got)} alerts"
        assert got[0].sensor_id == event.sensor_id
    assert unmatched == []
    assert len({a.alert_id for a in opened}) == len(opened)


def test_normal_traffic_opens_no_alert(monitor_settings, kio):
    settings = monitor_settings.replace(**ALERT_SETTINGS)
    run = spike_run(SPEC, streamed=2000, anomaly_rate=0.0)
    kio.produce_readings(run.readings)
    with monitor_thread(settings, SPEC.registry()):
        kio.wait_consumed(settings.group_id, settings.readings_topic)
    scores = kio.read(settings.scores_topic)
    alerts = kio.read(settings.alerts_topic)
    print(
        f"\nnormal traffic: {len(run.readings)} readings, {len(scores)} scores, {len(alerts)} alerts"
    )
    assert len(scores) == SPEC.sensors * (2000 - SPEC.window + 1)
    assert alerts == []


def two_channel_detector(window: int = 4) -> ZScoreDetector:
    """A z-score detector over channels a, b (standard normal)."""
    ts = np.arange(400, dtype=np.int64)
    values = np.random.default_rng(0).normal(size=(400, 2))
    series = SensorSeries("s1", ts, values, ("a", "b"), None, None)
    return ZScoreDetector.fit([series], window)


def good(ts: int) -> bytes:
    return b'{"sensor_id": "s1", "ts": %d, "values": {"a": 0.1, "b": -0.2}}' % ts


# (raw value, a fragment the dead letter's reason must contain)
JUNK = [
    (b"\xff\xfe not json", "not valid UTF-8 JSON"),
    (b'{"sensor_id": "s1", "ts": 5}', "values: missing"),
    (b'{"sensor_id": 7, "ts": 1, "value": 1.0}', "sensor_id: Expected `str`, got `int`"),
    (b'{"sensor_id": "s1", "ts": "soon", "value": 1.0}', "ts: 'soon' is not ISO-8601"),
    (b'{"sensor_id": "s1", "ts": 1, "values": {"a": NaN, "b": 1}}', "not valid UTF-8 JSON"),
    (b'{"sensor_id": "s1", "ts": 1, "values": {"a": 1e999, "b": 1}}', "Number out of range"),
    (
        b'{"sensor_id": "s1", "ts": 1, "values": {"a": 1, "b": 2}, "pad": "'
        + b"x" * 5_000_000
        + b'"}',
        "over the 1000000 limit",
    ),
    (
        b'{"sensor_id": "s1", "ts": 1500, "values": {"a": 1, "c": 2}}',
        "channels {a, c} do not match the model's {a, b}",
    ),
    (None, "tombstone"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_junk_goes_to_dead_letter_and_the_readings_around_it_are_scored(monitor_settings, kio):
    settings = monitor_settings.replace(metrics_port=free_port())
    kio.create_topic(settings.readings_topic, 1, **{"max.message.bytes": str(8 * 2**20)})
    # Good readings 1000..1019, a junk record after every other one.
    messages, junk_at = [], {}
    for i in range(20):
        messages.append((b"s1", good(1000 + i)))
        if i % 2 == 0 and i // 2 < len(JUNK):
            junk_at[len(messages)] = JUNK[i // 2]
            messages.append((b"s1", JUNK[i // 2][0]))
    kio.produce(settings.readings_topic, messages, max_request_size=8 * 2**20)

    with monitor_thread(settings, two_channel_detector()) as monitor:
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics") as page:
            metrics = page.read().decode()
        assert monitor.metrics.totals()["dead_letters"] == len(JUNK)

    letters = [decode_dead_letter(r.value) for r in kio.read(settings.dead_letter_topic)]
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic)]
    print(f"\njunk: {len(messages)} records, {len(letters)} dead letters, {len(scores)} scores")
    for letter in letters:
        print(f"  offset {letter.offset}: {letter.error[:110]}")
    assert [letter.offset for letter in letters] == sorted(junk_at)
    for letter in letters:
        raw, reason = junk_at[letter.offset]
        assert reason in letter.error
        assert (letter.topic, letter.partition, letter.key) == (settings.readings_topic, 0, "s1")
        if raw is not None and len(raw) < 100_000:
            assert base64.b64decode(letter.raw) == raw
    huge = next(letter for letter in letters if "over the" in letter.error)
    assert len(base64.b64decode(huge.raw)) == MAX_DEAD_LETTER_RAW
    # Every good reading is in a window: the first complete at 1003, then one per reading.
    assert [s.ts for s in scores] == list(range(1003, 1020))
    assert f"streamae_dead_lettered_total {len(JUNK)}.0" in metrics
    assert f"streamae_readings_consumed_total {len(messages)}.0" in metrics
    assert "streamae_windows_scored_total 17.0" in metrics
    assert "streamae_score_latency_seconds_count 17.0" in metrics


def test_a_ready_window_is_scored_without_waiting_for_more_traffic(monitor_settings, kio):
    """One reading at a time: each completes a window that is published on its own."""
    settings = monitor_settings
    kio.create_topic(settings.readings_topic, 1)
    with monitor_thread(settings, two_channel_detector()):
        for i in range(6):
            kio.produce(settings.readings_topic, [(b"s1", good(2000 + i))])
            expected = max(0, i - 2)
            wait_for(
                lambda n=expected: len(kio.read(settings.scores_topic)) >= n,
                what=f"{expected} score(s) after reading {i}",
            )
            assert len(kio.read(settings.scores_topic)) == expected


def test_a_rebalance_moves_the_state_of_the_sensors_with_their_partitions(monitor_settings, kio):
    settings = monitor_settings
    detector = two_channel_detector()
    sensors = [f"s{i}" for i in range(8)]

    def readings(start: int, count: int) -> list[Reading]:
        values = {"a": 0.1, "b": -0.2}
        return [Reading(s, ts, values) for ts in range(start, start + count) for s in sensors]

    kio.produce_readings(readings(0, 10))
    where = {r.key.decode(): r.partition for r in kio.read(settings.readings_topic)}
    with monitor_thread(settings, detector) as first:
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        assert sorted(first.pipeline.sensors()) == sensors
        with monitor_thread(settings, detector) as second:

            def split() -> bool:
                mine, theirs = first.assigned, second.assigned
                return bool(mine and theirs and not mine & theirs and len(mine | theirs) == 4)

            wait_for(split, what="the group to settle on two members")
            kept = {s for s in sensors if where[s] in {tp.partition for tp in first.assigned}}
            assert set(first.pipeline.sensors()) == kept
            # The moved sensors' state comes along through the state topic.
            wait_for(
                lambda: set(second.pipeline.sensors()) == set(sensors) - kept,
                what="the moved sensors to be restored",
            )
            kio.produce_readings(readings(10, 10))
            kio.wait_consumed(settings.group_id, settings.readings_topic)
            moved = set(second.pipeline.sensors())
    assert moved == set(sensors) - kept and kept and moved
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic)]
    late = [s for s in scores if s.ts >= 10]
    print(f"\nrebalance: kept {sorted(kept)}, moved {sorted(moved)}")
    # Kept or moved, every sensor's window continues: each new reading completes one.
    for sensor in sensors:
        assert sorted(s.ts for s in late if s.sensor_id == sensor) == list(range(10, 20)), sensor


class LosingProducer:
    """The monitor's producer, except that while ``lose`` is set its scores never
    reach Kafka: each such send fails, as one would if the broker refused it."""

    def __init__(self, producer, scores_topic: str) -> None:
        self._producer = producer
        self._scores_topic = scores_topic
        self.lose = threading.Event()

    def send(self, topic: str, *args, **kwargs):
        if self.lose.is_set() and topic == self._scores_topic:
            failed = Future()
            failed.failure(KafkaTimeoutError("the score was lost (injected)"))
            return failed
        return self._producer.send(topic, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._producer, name)


class GainingConsumer:
    """``monitor``'s consumer, except that once ``armed``, a poll whose rebalance
    checkpoint failed returns only with records of the partitions the monitor
    gained in it: kafka-python can return them in the same call as the rebalance,
    and this makes that certain (it polls on, as a longer poll timeout would)."""

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor
        self._consumer = monitor.clients.consumer
        self.armed = threading.Event()
        #: The gained partitions whose records came back with the failed checkpoint.
        self.merged: set[TopicPartition] = set()
        #: Set if the gained partitions brought no records within 30 s.
        self.starved = False

    def poll(self, timeout_ms: int = 0):
        before = set(self._consumer.assignment())
        batch = {tp: list(records) for tp, records in self._consumer.poll(timeout_ms).items()}
        deadline = time.monotonic() + 30
        while self.armed.is_set() and self._monitor._handover_error is not None:
            gained = (set(self._consumer.assignment()) - before) & set(batch)
            if gained:
                self.merged |= gained
                break
            if time.monotonic() > deadline:
                self.starved = True
                break
            for tp, records in self._consumer.poll(200).items():
                batch.setdefault(tp, []).extend(records)
        return batch

    def __getattr__(self, name: str):
        return getattr(self._consumer, name)


def test_a_checkpoint_failing_before_a_rebalance_replays_and_loses_no_score(monitor_settings, kio):
    # No periodic checkpoint: only the one before the rebalance could save the batch.
    settings = monitor_settings.replace(checkpoint_interval_ms=600_000)
    detector = two_channel_detector()
    sensors = [f"s{i}" for i in range(8)]
    readings = [Reading(s, ts, {"a": 0.1, "b": -0.2}) for ts in range(10) for s in sensors]
    with monitor_thread(settings, detector) as first:
        wait_for(lambda: first.assigned and first._underway is None, what="the first monitor")
        losing = LosingProducer(first.clients.producer, settings.scores_topic)
        first.clients.producer = losing
        losing.lose.set()
        kio.produce_readings(readings)
        windows = len(sensors) * (10 - 4 + 1)
        wait_for(lambda: first.metrics.totals()["windows"] >= windows, what="the lost scores")
        losing.lose.clear()
        with monitor_thread(settings, detector) as second:
            wait_for(
                lambda: first.assigned and second.assigned and not first.assigned & second.assigned,
                what="the group to settle on two members",
            )
            expected = {(sensor, ts) for sensor in sensors for ts in range(3, 10)}

            def published() -> set[tuple[str, int]]:
                scores = [decode_score(r.value) for r in kio.read(settings.scores_topic)]
                return {(s.sensor_id, s.ts) for s in scores}

            wait_for(lambda: published() >= expected, what="every score published")
    assert first.metrics.totals()["rewinds"] >= 1
    assert published() == expected


def test_a_member_whose_handover_fails_replays_the_partitions_it_gains_too(monitor_settings, kio):
    settings = monitor_settings.replace(checkpoint_interval_ms=600_000)
    detector = two_channel_detector()
    sensors = [f"s{i}" for i in range(8)]
    readings = [Reading(s, ts, {"a": 0.1, "b": -0.2}) for ts in range(10) for s in sensors]
    expected = {(sensor, ts) for sensor in sensors for ts in range(3, 10)}

    def published() -> set[tuple[str, int]]:
        scores = [decode_score(r.value) for r in kio.read(settings.scores_topic)]
        return {(s.sensor_id, s.ts) for s in scores}

    second = Monitor(settings, detector, from_beginning=True)
    stop_second, second_failed = threading.Event(), []

    def run_second() -> None:
        try:
            second.run(stop_second)
        except KafkaUnavailable as exc:
            second_failed.append(exc)

    with monitor_thread(settings, detector) as first:
        wait_for(lambda: first.assigned and first._underway is None, what="the first monitor")
        thread = threading.Thread(target=run_second, name="second monitor", daemon=True)
        thread.start()
        wait_for(
            lambda: first.assigned and second.assigned and not first.assigned & second.assigned,
            what="the group to settle on two members",
        )
        losing = [
            LosingProducer(m.clients.producer, settings.scores_topic) for m in (first, second)
        ]
        first.clients.producer, second.clients.producer = losing
        for producer in losing:
            producer.lose.set()
        kio.produce_readings(readings)
        windows = len(sensors) * (10 - 4 + 1)
        wait_for(
            lambda: (
                first.metrics.totals()["windows"] + second.metrics.totals()["windows"] >= windows
            ),
            what="the lost scores",
        )
        losing[0].lose.clear()
        # The first member's checkpoint in the coming rebalance fails (its earlier
        # scores were lost), and that same poll brings records of the partitions it
        # gains: they must be read again too, not skipped.
        gaining = GainingConsumer(first)
        first.clients.consumer = gaining
        gaining.armed.set()
        # The second member cannot publish its last checkpoint either: it stops
        # without committing, and the first takes over its partitions.
        stop_second.set()
        thread.join(60)
        assert second_failed, "the second monitor's last checkpoint should have failed"
        wait_for(lambda: gaining.starved or published() >= expected, what="every score published")
        assert not gaining.starved, "the gained partitions brought no records"
        assert len(first.assigned) == settings.readings_partitions
        assert gaining.merged, "no poll brought a failed handover and gained records together"
    assert first.metrics.totals()["rewinds"] >= 1
    assert published() == expected
