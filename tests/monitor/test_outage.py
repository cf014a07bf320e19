"""The broker goes away mid-run: the monitor waits, resumes without loss, or gives up clearly.

These tests stop and restart a broker of their own (not the session's).
"""

from __future__ import annotations

import collections
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from streamae.config import Settings
from streamae.exceptions import BrokerError
from streamae.kafka.broker import LocalBroker
from streamae.messages import decode_alert, decode_score
from streamae.pipeline import Pipeline

from .conftest import KafkaIO, monitor_thread
from .scenario import ALERT_SETTINGS, DetectorSpec, spike_run

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SPEC = DetectorSpec()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker these tests may stop and start (same data, same port)."""
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka-outage"),
        port=free_port(),
        controller_port=free_port(),
        start_timeout_s=120.0,
    )
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"could not start a broker for the outage tests: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def outage_settings(own_broker: LocalBroker, make_kafka_settings) -> Settings:
    if not own_broker.running:
        own_broker.start()
    return make_kafka_settings(bootstrap_servers=own_broker.bootstrap, metrics_port=0)


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_a_broker_restart_mid_stream_loses_nothing(own_broker, outage_settings, caplog, delivery):
    """Exactly-once also repeats nothing; at-least-once may repeat, never loses."""
    settings = outage_settings.replace(
        **ALERT_SETTINGS,
        delivery=delivery,
        instance_id="outage-1",
        max_poll_records=200,
        broker_give_up_s=180,
    )
    kio = KafkaIO(settings)
    run = spike_run(SPEC, streamed=3000)
    half = len(run.readings) // 2
    kio.produce_readings(run.readings[:half])
    caplog.set_level(logging.INFO, logger="streamae.monitor")
    with monitor_thread(settings, SPEC.registry()) as monitor:
        while kio.lag(settings.group_id, settings.readings_topic) > half * 0.7:
            time.sleep(0.05)
        own_broker.stop()
        stopped = time.monotonic()
        while not any("Kafka unreachable" in r.getMessage() for r in caplog.records):
            assert time.monotonic() - stopped < 60, "the monitor never noticed the outage"
            time.sleep(0.2)
        time.sleep(3)
        own_broker.start()
        down_s = time.monotonic() - stopped
        kio.produce_readings(run.readings[half:])
        kio.wait_consumed(settings.group_id, settings.readings_topic, 180)
        totals = monitor.metrics.totals()
    expected = Pipeline(settings, SPEC.registry()).process(run.readings)
    exactly_once = delivery == "exactly-once"
    alerts = [
        decode_alert(r.value) for r in kio.read(settings.alerts_topic, committed=exactly_once)
    ]
    scores = [
        decode_score(r.value) for r in kio.read(settings.scores_topic, committed=exactly_once)
    ]
    per_window = collections.Counter((s.sensor_id, s.ts) for s in scores)
    outage_lines = [r.getMessage() for r in caplog.records if r.name == "streamae.monitor.outage"]
    print(
        f"\n{delivery}, broker down {down_s:.0f} s mid-stream: {len(scores)} scores "
        f"(expected {len(expected.scores)}, duplicated "
        f"{sum(n - 1 for n in per_window.values() if n > 1)}), {len(alerts)} alert events "
        f"(expected {len(expected.alerts)}); batches replayed {totals['rewinds']:.0f}; log:"
    )
    for line in outage_lines:
        print("  " + line)
    assert set(per_window) == {(s.sensor_id, s.ts) for s in expected.scores}
    assert {(a.alert_id, a.state) for a in alerts} == {
        (a.alert_id, a.state) for a in expected.alerts
    }
    if exactly_once:
        assert max(per_window.values()) == 1
        assert len(alerts) == len(expected.alerts)
    assert sum("Kafka unreachable, retrying" in line for line in outage_lines) == 1
    assert sum(line.startswith("Kafka back after") for line in outage_lines) == 1


def test_the_monitor_gives_up_after_broker_give_up_s(
    own_broker, outage_settings, monitor_processes
):
    settings = outage_settings.replace(**ALERT_SETTINGS, broker_give_up_s=12)
    proc = monitor_processes(settings, spec=SPEC)
    proc.wait_for(lambda log: "partitions assigned: readings" in log, timeout_s=120)
    own_broker.stop()
    stopped = time.monotonic()
    code = proc.process.wait(120)
    waited = time.monotonic() - stopped
    log = proc.log()
    print(f"\ngave up after {waited:.0f} s with exit {code}: {log.strip().splitlines()[-1]}")
    assert code == 2
    assert "Kafka unreachable, retrying" in log
    assert "giving up after STREAMAE_BROKER_GIVE_UP_S=12 s" in log
    assert "Traceback" not in log
    assert waited >= 12
