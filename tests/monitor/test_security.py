"""Authenticated Kafka: the monitor over the session broker's SASL (SCRAM-SHA-512) listener.

Right credentials work, wrong ones are one clear line and exit 2, and the
password never shows in any log output, even at DEBUG.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from streamae.messages import decode_score

from .conftest import ZSCORE_MONITOR, KafkaIO, monitor_thread, settings_env
from .scenario import ALERT_SETTINGS, DetectorSpec, spike_run

pytestmark = pytest.mark.kafka

SPEC = DetectorSpec()


def test_exactly_once_over_sasl_without_the_password_in_any_log(
    make_kafka_settings, kafka_broker, caplog
):
    settings = make_kafka_settings(sasl=True).replace(
        **ALERT_SETTINGS, delivery="exactly-once", instance_id="sasl-1", metrics_port=0
    )
    kio = KafkaIO(settings)
    run = spike_run(SPEC, streamed=50)
    kio.produce_readings(run.readings)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="kafka")  # the CLI tests quieten it in-process
    with monitor_thread(settings, SPEC.registry()):
        kio.wait_consumed(settings.group_id, settings.readings_topic)
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic, committed=True)]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    print(
        f"\nSASL_PLAINTEXT SCRAM-SHA-512 as {settings.sasl_username!r}: {len(scores)} scores; "
        f"{len(caplog.records)} log records at DEBUG, password in them: "
        f"{kafka_broker.sasl_password in logged}"
    )
    assert len(scores) == SPEC.sensors * (50 - SPEC.window + 1)
    assert kafka_broker.sasl_password not in logged
    assert len(caplog.records) > 100  # the check looked at real output


def run_monitor(settings, *args: str) -> subprocess.CompletedProcess:
    """``streamae -v monitor`` with the tests' z-score detectors, as a user runs it."""
    command = [sys.executable, str(ZSCORE_MONITOR), SPEC.to_json(), "-v", "monitor", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMAE_")}
    return subprocess.run(
        command,
        env=env | settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("right", [True, False], ids=["right-password", "wrong-password"])
def test_credentials_at_the_command_line(make_kafka_settings, kafka_broker, right):
    password = kafka_broker.sasl_password if right else "Wr0ng-" + kafka_broker.sasl_password[:6]
    settings = make_kafka_settings(sasl=True, sasl_password=password, metrics_port=0)
    result = run_monitor(settings, "--max-runtime", "3")
    output = result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    print(f"\n{'right' if right else 'wrong'} password: exit {result.returncode}: {last[:300]}")
    assert password not in output and kafka_broker.sasl_password not in output
    assert "Traceback" not in output
    if right:
        assert result.returncode == 0, result.stderr[-2000:]
        assert "monitor stopped" in result.stderr
    else:
        assert result.returncode == 2
        assert last.startswith("streamae monitor: error: Kafka at")
        assert "refused user 'streamae-test'" in last
        assert "STREAMAE_SASL_PASSWORD" in last
