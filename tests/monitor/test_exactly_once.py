"""Exactly-once delivery: one Kafka transaction per batch, seen through read_committed."""

from __future__ import annotations

import collections
import random
import re
import subprocess
import time

import pytest
from kafka import KafkaConsumer

from streamae.kafka.clients import make_consumer
from streamae.messages import decode_alert, decode_score
from streamae.monitor.delivery import twin_in_group
from streamae.pipeline import Pipeline

from .conftest import monitor_thread
from .scenario import ALERT_SETTINGS, DetectorSpec, spike_run

pytestmark = pytest.mark.kafka

SPEC = DetectorSpec()


def test_results_state_and_offsets_commit_together(monitor_settings, kio):
    settings = monitor_settings.replace(
        **ALERT_SETTINGS, delivery="exactly-once", instance_id="eos-1", max_poll_records=500
    )
    run = spike_run(SPEC, streamed=1000)
    kio.produce_readings(run.readings)
    with monitor_thread(settings, SPEC.registry()) as monitor:
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        batches = monitor.metrics.totals()
    expected = Pipeline(settings, SPEC.registry()).process(run.readings)
    alerts = [decode_alert(r.value) for r in kio.read(settings.alerts_topic, committed=True)]
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic, committed=True)]
    per_window = collections.Counter((s.sensor_id, s.ts) for s in scores)
    print(
        f"\nexactly-once: {len(scores)} scores, {len(alerts)} alert events "
        f"(expected {len(expected.scores)}, {len(expected.alerts)}); {batches}"
    )
    assert set(per_window) == {(s.sensor_id, s.ts) for s in expected.scores}
    assert max(per_window.values()) == 1
    assert sorted((a.alert_id, a.state) for a in alerts) == sorted(
        (a.alert_id, a.state) for a in expected.alerts
    )
    assert len(kio.read(settings.state_topic, committed=True)) > 0


BIG = DetectorSpec(sensors=100)
KILLS = 5


@pytest.mark.slow
def test_kill_9_five_times_and_every_alert_and_score_is_there_exactly_once(
    monitor_settings, kio, monitor_processes
):
    """200,000 readings; the monitor is killed -9 at five seeded moments and restarted."""
    started = time.monotonic()
    settings = monitor_settings.replace(
        **ALERT_SETTINGS,
        delivery="exactly-once",
        instance_id="eos-kill",
        threshold_window=500,
        max_poll_records=2000,
    )
    run = spike_run(BIG, streamed=2000)
    assert len(run.readings) == 200_000
    kio.produce_readings(run.readings)
    expected = Pipeline(settings, BIG.registry()).process(run.readings)
    rng = random.Random(20261127)
    targets = sorted(rng.uniform(0.05, 0.9) for _ in range(KILLS))
    total = len(run.readings)
    kills = []
    for target in targets:
        proc = monitor_processes(settings, spec=BIG)
        while (
            done := total - kio.lag(settings.group_id, settings.readings_topic)
        ) < target * total:
            proc.check_alive()
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))  # anywhere in a batch (~1 s) or its transaction
        proc.kill()
        kills.append(done)
    last = monitor_processes(settings, spec=BIG)
    kio.wait_consumed(settings.group_id, settings.readings_topic, 180, alive=last.check_alive)
    assert last.stop() == 0
    replayed = sum(int(n) for n in re.findall(r"(\d+) batches replayed", last.log()))

    processed = time.monotonic()
    alerts = [decode_alert(r.value) for r in kio.read(settings.alerts_topic, 120, committed=True)]
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic, 300, committed=True)]
    # What the killed monitors' open transactions had sent: hidden by read_committed.
    aborted_alerts = len(kio.read(settings.alerts_topic, 120)) - len(alerts)
    aborted_scores = len(kio.read(settings.scores_topic, 300)) - len(scores)
    seen = collections.Counter((a.alert_id, a.state) for a in alerts)
    want = collections.Counter((a.alert_id, a.state) for a in expected.alerts)
    per_window = collections.Counter((s.sensor_id, s.ts) for s in scores)
    print(
        f"\nexactly-once under kill -9: {total} readings, {BIG.sensors} sensors; "
        f"{len(kills)} crashes survived (killed after {kills} readings committed); "
        f"alerts expected {sum(want.values())} / seen {sum(seen.values())} / duplicated "
        f"{sum(n - 1 for n in seen.values() if n > 1)}; scores {len(scores)} for "
        f"{len(per_window)} windows (expected {len(expected.scores)}), duplicated "
        f"{sum(n - 1 for n in per_window.values() if n > 1)}; {replayed} batch(es) replayed "
        f"by the last monitor; {aborted_scores} score and {aborted_alerts} alert messages of "
        f"aborted transactions hidden by read_committed; {time.monotonic() - started:.0f} s "
        f"({processed - started:.0f} s until all readings were committed)"
    )
    assert len(kills) == KILLS and kills == sorted(kills) and kills[-1] < total
    assert seen == want
    assert max(seen.values()) == 1
    assert set(per_window) == {(s.sensor_id, s.ts) for s in expected.scores}
    assert max(per_window.values()) == 1


def test_a_rebalance_mid_stream_moves_state_and_repeats_nothing(monitor_settings, kio):
    """A second monitor joins mid-stream, then leaves again: the sensors' state follows
    their partitions through the state topic both ways, and every result is committed once."""
    settings = monitor_settings.replace(
        **ALERT_SETTINGS, delivery="exactly-once", max_poll_records=300
    )
    run = spike_run(SPEC, streamed=1500)
    third = len(run.readings) // 3
    parts = [run.readings[k * third : (k + 1) * third] for k in range(2)]
    parts.append(run.readings[2 * third :])
    kio.create_topic(settings.readings_topic, 4)
    with monitor_thread(settings.replace(instance_id="eos-a"), SPEC.registry()) as first:
        kio.produce_readings(parts[0])
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        with monitor_thread(settings.replace(instance_id="eos-b"), SPEC.registry()) as second:
            deadline = time.monotonic() + 60
            while not (first.assigned and second.assigned and len(first.sensors) < SPEC.sensors):
                assert time.monotonic() < deadline, "the group never settled on two members"
                time.sleep(0.2)
            kio.produce_readings(parts[1])
            kio.wait_consumed(settings.group_id, settings.readings_topic)
            shared = (len(first.assigned), len(second.assigned))
        kio.produce_readings(parts[2])
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        restored = (first.metrics.totals()["restored"], second.metrics.totals()["restored"])
    expected = Pipeline(settings, SPEC.registry()).process(run.readings)
    alerts = [decode_alert(r.value) for r in kio.read(settings.alerts_topic, committed=True)]
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic, committed=True)]
    per_window = collections.Counter((s.sensor_id, s.ts) for s in scores)
    print(
        f"\nexactly-once rebalance: partitions split {shared}; sensors restored by the "
        f"first / second monitor {restored}; {len(scores)} scores (expected "
        f"{len(expected.scores)}), {len(alerts)} alert events (expected {len(expected.alerts)})"
    )
    assert shared[0] and shared[1]
    assert restored[0] > 0 and restored[1] > 0
    assert set(per_window) == {(s.sensor_id, s.ts) for s in expected.scores}
    assert max(per_window.values()) == 1
    assert sorted((a.alert_id, a.state) for a in alerts) == sorted(
        (a.alert_id, a.state) for a in expected.alerts
    )


@pytest.mark.slow
def test_a_second_monitor_with_the_same_instance_id_fences_the_first(
    monitor_settings, kio, monitor_processes
):
    """A twin (same group and instance id, e.g. a pod started twice) takes over: the first
    monitor stops with a clear message once it tries to commit, and nothing is doubled."""
    settings = monitor_settings.replace(
        **ALERT_SETTINGS, delivery="exactly-once", instance_id="twin"
    )
    run = spike_run(SPEC, streamed=300)
    kio.create_topic(settings.readings_topic, 4)
    first = monitor_processes(settings, spec=SPEC)
    first.wait_for(lambda log: "partitions assigned: readings" in log, timeout_s=120)
    second = monitor_processes(settings, spec=SPEC)
    second.wait_for(lambda log: "partitions assigned: readings" in log, timeout_s=120)
    kio.produce_readings(run.readings)
    try:
        code = first.process.wait(120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the first monitor kept running:\n{first.log()[-3000:]}")
    last = first.log().strip().splitlines()[-1]
    kio.wait_consumed(settings.group_id, settings.readings_topic, alive=second.check_alive)
    assert second.stop() == 0
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic, committed=True)]
    per_window = collections.Counter((s.sensor_id, s.ts) for s in scores)
    print(
        f"\ntwin instance id: the first monitor exited {code}: {last}\n"
        f"{len(scores)} committed scores for {len(per_window)} windows"
    )
    assert code == 2
    assert "runs as instance 'twin' and took over" in last
    assert "STREAMAE_INSTANCE_ID" in last and "Traceback" not in first.log()
    assert len(per_window) == SPEC.sensors * (300 - SPEC.window + 1)
    assert max(per_window.values()) == 1


def test_a_twin_is_seen_in_the_group_by_the_member_it_replaced(monitor_settings, kio):
    """What a stalled or fenced monitor checks before it stops."""
    settings = monitor_settings.replace(instance_id="twin")
    kio.create_topic(settings.readings_topic, 2)

    def member() -> KafkaConsumer:
        consumer = make_consumer(settings, group_id=settings.group_id, group_instance_id="twin")
        # As the monitor does (monitor/connect.py): know the partitions before joining, or
        # the leader assigns nothing and the group must rebalance (once seen stuck there).
        consumer.partitions_for_topic(settings.readings_topic)
        consumer.subscribe([settings.readings_topic])
        deadline = time.monotonic() + 60
        while not consumer.assignment():
            assert time.monotonic() < deadline, "never joined the group"
            consumer.poll(timeout_ms=200)
        return consumer

    first = member()
    second = member()
    try:
        assert twin_in_group(settings, first) is True
        assert twin_in_group(settings, second) is False
        assert twin_in_group(settings.replace(instance_id="other"), second) is False
    finally:
        second.close()
        first.close()
