"""Per-sensor state on the state topic: what is written, where, and what a restart restores."""

from __future__ import annotations

import collections
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
from kafka import TopicPartition

from streamae.config import Settings
from streamae.detectors.zscore import ZScoreDetector
from streamae.messages import Reading, decode_score
from streamae.monitor import connect, service
from streamae.monitor.service import Monitor
from streamae.monitor.state import StateRecord, Stored, decode_state, encode_state
from streamae.pipeline import Pipeline

from .conftest import monitor_thread
from .scenario import ALERT_SETTINGS, DetectorSpec, spike_run

SPEC = DetectorSpec()


def test_a_state_record_round_trips_and_junk_is_refused():
    snapshot = {"version": 1, "window": {"rows": "AAAA"}, "x": [1.5, None]}
    record = decode_state(encode_state(1_764_151_200_000, snapshot))
    assert (record.newest_ts, record.pipeline) == (1_764_151_200_000, snapshot)
    for junk in (b"", b"\xff", b"[]", b'{"format": 99, "newest_ts": 1, "pipeline": {}}'):
        with pytest.raises(ValueError):
            decode_state(junk)


@pytest.mark.kafka
def test_a_restarted_monitor_needs_no_warm_up(monitor_settings, kio, caplog):
    """After a restart, each sensor's first new reading completes a window at once, and
    its score and threshold are those of a monitor that never stopped."""
    settings = monitor_settings.replace(**ALERT_SETTINGS)
    run = spike_run(SPEC, streamed=300)
    first, last = run.readings[: -SPEC.sensors], run.readings[-SPEC.sensors :]
    assert len({r.sensor_id for r in last}) == SPEC.sensors  # one new reading per sensor
    kio.produce_readings(first)
    with monitor_thread(settings, SPEC.registry()) as before:
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        assert len(before.sensors) == SPEC.sensors
    scored_before = {(s.sensor_id, s.ts) for s in read_scores(kio, settings)}

    kio.produce_readings(last)
    with monitor_thread(settings, SPEC.registry()) as after:
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        restored = after.metrics.totals()["restored"]
    scores = read_scores(kio, settings)
    new = [s for s in scores if (s.sensor_id, s.ts) not in scored_before]

    uninterrupted = Pipeline(settings, SPEC.registry()).process(run.readings).scores[-len(last) :]
    print(
        f"\nrestart: {restored:.0f} sensors restored, {len(new)} scores for the "
        f"{len(last)} readings sent after the restart"
    )
    assert restored == SPEC.sensors
    assert f"restored {SPEC.sensors} sensor(s) from {settings.state_topic}" in caplog.text
    assert len(scores) == len(scored_before) + len(new)  # nothing scored twice
    assert sorted((s.sensor_id, s.ts) for s in new) == sorted((r.sensor_id, r.ts_ms) for r in last)
    expected = {(s.sensor_id, s.ts): (s.score, s.threshold) for s in uninterrupted}
    assert {(s.sensor_id, s.ts): (s.score, s.threshold) for s in new} == expected


@pytest.mark.kafka
def test_state_lives_in_the_partition_number_of_the_sensors_readings(monitor_settings, kio):
    settings = monitor_settings.replace(**ALERT_SETTINGS, threshold_window=500)
    sensors = [f"pump-{i}" for i in range(12)]
    values = {"value": 0.0}
    readings = [Reading(s, ts, values) for ts in range(1000, 1010) for s in sensors]
    detector = ZScoreDetector(("value",), 4, [0.0], [1.0], np.linspace(0.5, 1.5, 50))
    kio.produce_readings(readings)
    with monitor_thread(settings, detector):
        kio.wait_consumed(settings.group_id, settings.readings_topic)
    where = {r.key: r.partition for r in kio.read(settings.readings_topic)}
    state = kio.read(settings.state_topic)
    latest = {r.key: r for r in state}
    sizes = [len(r.value) for r in latest.values()]
    print(f"\nstate: {len(state)} records for {len(latest)} sensors, {max(sizes)} bytes at most")
    assert set(latest) == {s.encode() for s in sensors}
    assert all(r.partition == where[r.key] for r in state)
    assert all(decode_state(r.value).newest_ts == 1009 for r in latest.values())
    # Window (4 x 1 floats) + threshold ring (500 floats) + counters, as exact float64.
    assert max(sizes) < 500 * 8 * 4 / 3 + 2000


class RebalancingConsumer:
    """The group consumer as a restore sees it: each poll may run a rebalance's hooks."""

    def __init__(self, monitor: Monitor, partitions: set[TopicPartition]) -> None:
        self.monitor = monitor
        self.partitions = partitions
        self.rebalances: list[str] = []  # each poll runs the next one
        self.paused: set[TopicPartition] = set()
        self.polls = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.monitor.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def poll(self, timeout_ms: int) -> dict:
        assert self.paused == self.monitor.assigned  # nothing is read during a restore
        self.polls += 1
        step = self.rebalances.pop(0) if self.rebalances else "none"
        if step == "lost and given back":
            self.monitor.drop(set(self.partitions))
            self.monitor.reassigned(set(self.partitions))
        elif step == "revoked":  # a rebalance begins; its assignment comes in a later poll
            self.monitor.handover(set(self.partitions))
        elif step == "assigned":
            self.monitor.reassigned(set(self.partitions))
        return {}


class StoredState:
    """The state reader: the sensors stored in partition 0, and how often it was read."""

    def __init__(self, stored) -> None:
        self.stored = stored
        self.reads = 0

    def read(self, partitions, between):
        assert set(partitions) == {0}
        self.reads += 1
        return self.stored


SENSORS = ["a", "b", "c"]


def restoring_monitor(rebalances: list[str]) -> tuple[Monitor, RebalancingConsumer]:
    """A monitor about to restore partition 0, which stores ``SENSORS``; its group consumer
    runs ``rebalances`` at its polls."""
    detector = ZScoreDetector(("value",), 4, [0.0], [1.0], np.linspace(0.5, 1.5, 50))
    settings = Settings(state_topic="state")
    pipeline = Pipeline(settings, detector)
    pipeline.process([Reading(s, ts, {"value": 0.1}) for ts in range(6) for s in SENSORS])
    stored = Stored({s: (0, StateRecord(5, pipeline.snapshot(s))) for s in SENSORS}, {})
    monitor = Monitor(settings, detector)
    partition = {TopicPartition(settings.readings_topic, 0)}
    consumer = RebalancingConsumer(monitor, partition)
    consumer.rebalances = rebalances
    monitor.clients, monitor._state = SimpleNamespace(consumer=consumer), StoredState(stored)
    monitor.delivery = SimpleNamespace(pending=False)  # nothing to hand over
    monitor.assigned, monitor._to_load = set(partition), {0}
    return monitor, consumer


def test_a_partition_lost_and_given_back_during_its_restore_is_restored_again_in_full(
    monkeypatch,
):
    """A rebalance inside a restore's group poll takes partition 0 away and gives it back:
    the sensors restored so far were forgotten with it, so its restore starts again
    rather than carrying on with the rest only."""
    monitor, _ = restoring_monitor(["none", "lost and given back"])  # after the first sensor
    monkeypatch.setattr(service, "KEEP_ALIVE_S", 0.0)  # poll the group between all sensors
    monitor._restore()
    assert monitor._state.reads == 2
    assert sorted(monitor.book.sensors) == SENSORS and not monitor._to_load
    assert monitor.metrics.totals()["restored"] == len(SENSORS)  # the first pass not counted


def test_a_rebalance_begun_in_a_restore_s_group_poll_is_polled_on_until_its_assignment(
    monkeypatch,
):
    """kafka-python sends no heartbeats while a member joins: once a rebalance began in a
    keep-alive poll, the member polls on at once until its assignment came, not only at
    the next keep-alive (here never: the interval is too long to come again)."""
    monitor, consumer = restoring_monitor(["revoked", "none", "assigned"])
    monkeypatch.setattr(service, "KEEP_ALIVE_S", 3600.0)
    monitor._polled_at = -math.inf  # one keep-alive is due, at the first sensor
    monitor._restore()
    assert consumer.polls == 3 and not consumer.rebalances
    assert sorted(monitor.book.sensors) == SENSORS and monitor._state.reads == 1


@pytest.mark.kafka
def test_a_restore_longer_than_the_group_allows_between_polls_keeps_the_member(
    monitor_settings, kio, monkeypatch, caplog
):
    """The group drops a member that does not poll for ``MAX_POLL_INTERVAL_MS`` (here 8 s);
    a restore that takes twice that (each sensor slowed down) polls the group meanwhile,
    its partitions paused. The member stays: one assignment, each sensor restored once,
    every window scored once, as an uninterrupted run scores it."""
    settings = monitor_settings.replace(**ALERT_SETTINGS)
    run = spike_run(SPEC, streamed=300)
    half = len(run.readings) // 2
    kio.produce_readings(run.readings[:half])
    with monitor_thread(settings, SPEC.registry()):
        kio.wait_consumed(settings.group_id, settings.readings_topic)

    monkeypatch.setattr(connect, "SESSION_TIMEOUT_MS", 6_000)  # the broker's least
    monkeypatch.setattr(connect, "MAX_POLL_INTERVAL_MS", 8_000)
    monkeypatch.setattr(service, "KEEP_ALIVE_S", 2.0)
    restore = Pipeline.restore
    restore_s = 2 * 8.0 / SPEC.sensors

    def slow_restore(self, *args, **kwargs):
        time.sleep(restore_s)
        return restore(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "restore", slow_restore)
    kio.produce_readings(run.readings[half:])
    caplog.clear()
    with monitor_thread(settings, SPEC.registry()) as after:
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        restored = after.metrics.totals()["restored"]
    scores = read_scores(kio, settings)
    expected = Pipeline(settings, SPEC.registry()).process(run.readings).scores
    assignments = caplog.text.count("partitions assigned")
    print(
        f"\nrestore of {SPEC.sensors} sensors at {restore_s:.0f} s each: {restored:.0f} "
        f"restored, {assignments} assignment(s), {len(scores)} scores for {len(expected)} windows"
    )
    assert (restored, assignments) == (SPEC.sensors, 1)
    assert "partitions lost" not in caplog.text
    assert sorted((s.sensor_id, s.ts) for s in scores) == sorted(
        (s.sensor_id, s.ts) for s in expected
    )
    uninterrupted = {(s.sensor_id, s.ts): (s.score, s.threshold) for s in expected}
    assert {(s.sensor_id, s.ts): (s.score, s.threshold) for s in scores} == uninterrupted


@pytest.mark.kafka
@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_a_member_joining_during_a_long_restore_takes_its_share_and_nothing_is_lost(
    monitor_settings, kio, monkeypatch, caplog, delivery
):
    """While the first monitor restores, each sensor slowed down past what the group allows
    between polls (8 s here), a second one joins: the rebalance runs inside the first
    one's restore, the partitions split, each side restores its own, nobody is dropped
    from the group, and every window is scored as an uninterrupted run scores it (once,
    exactly-once)."""
    settings = monitor_settings.replace(**ALERT_SETTINGS, delivery=delivery)
    committed = delivery == "exactly-once"
    run = spike_run(SPEC, streamed=300)
    half = len(run.readings) // 2
    kio.create_topic(settings.readings_topic, 4)
    kio.produce_readings(run.readings[:half])
    with monitor_thread(settings.replace(instance_id="first"), SPEC.registry()):
        kio.wait_consumed(settings.group_id, settings.readings_topic)

    monkeypatch.setattr(connect, "SESSION_TIMEOUT_MS", 6_000)  # the broker's least
    monkeypatch.setattr(connect, "MAX_POLL_INTERVAL_MS", 8_000)
    restore = Pipeline.restore

    def slow_restore(self, *args, **kwargs):
        time.sleep(2.0)  # 8 sensors: 16 s, twice the group's limit
        return restore(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "restore", slow_restore)
    kio.produce_readings(run.readings[half:])
    caplog.clear()
    with monitor_thread(settings.replace(instance_id="first"), SPEC.registry()) as first:
        deadline = time.monotonic() + 30
        while not first.book.sensors:
            assert time.monotonic() < deadline, "the first monitor restored no sensor"
            time.sleep(0.1)
        with monitor_thread(settings.replace(instance_id="second"), SPEC.registry()) as second:
            kio.wait_consumed(settings.group_id, settings.readings_topic, timeout_s=120)
            shares = (len(first.assigned), len(second.assigned))
            restored = (first.metrics.totals()["restored"], second.metrics.totals()["restored"])
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic, committed=committed)]
    per_window = collections.Counter((s.sensor_id, s.ts) for s in scores)
    expected = Pipeline(settings, SPEC.registry()).process(run.readings).scores
    print(
        f"\n{delivery}, a member joining mid-restore: partitions split {shares}, sensors "
        f"restored {restored}; {len(scores)} scores for {len(expected)} windows"
    )
    assert shares[0] and shares[1] and sum(shares) == 4
    assert "partitions lost" not in caplog.text
    assert "poll timeout has expired" not in caplog.text
    assert set(per_window) == {(s.sensor_id, s.ts) for s in expected}
    if committed:
        assert max(per_window.values()) == 1
    uninterrupted = {(s.sensor_id, s.ts): (s.score, s.threshold) for s in expected}
    assert all((s.score, s.threshold) == uninterrupted[s.sensor_id, s.ts] for s in scores)


def read_scores(kio, settings):
    return [decode_score(r.value) for r in kio.read(settings.scores_topic)]


@pytest.mark.kafka
def test_a_monitor_that_rejoins_its_group_mid_stream_scores_every_window_once(
    monitor_settings, kio, monkeypatch, caplog
):
    """The way out of a rebalance that never delivered an assignment: checkpoint, leave,
    rejoin, restore from the state topic. Forced here once, after the first few batches."""
    settings = monitor_settings.replace(**ALERT_SETTINGS, max_poll_records=200)
    run = spike_run(SPEC, streamed=300)
    rejoined: list[int] = []
    tick = Monitor._tick

    def tick_then_rejoin_once(monitor: Monitor) -> None:
        consumed = monitor.metrics.totals()["readings"]
        if not rejoined and consumed >= len(run.readings) // 3:
            rejoined.append(int(consumed))
            monitor._rejoin(0)
        tick(monitor)

    monkeypatch.setattr(Monitor, "_tick", tick_then_rejoin_once)
    kio.produce_readings(run.readings)
    with monitor_thread(settings, SPEC.registry()) as monitor:
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        restored = monitor.metrics.totals()["restored"]
    scores = read_scores(kio, settings)
    expected = Pipeline(settings, SPEC.registry()).process(run.readings).scores
    print(
        f"\nrejoined after {rejoined} readings: {restored:.0f} sensors restored, "
        f"{len(scores)} scores for {len(expected)} windows"
    )
    assert rejoined and "rejoining group" in caplog.text
    assert restored > 0
    assert sorted((s.sensor_id, s.ts) for s in scores) == sorted(
        (s.sensor_id, s.ts) for s in expected
    )
    assert {(s.sensor_id, s.ts): s.score for s in scores} == {
        (s.sensor_id, s.ts): s.score for s in expected
    }
