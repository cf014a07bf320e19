"""Fixtures shared by the whole suite.

- ``kafka_broker``: one real Apache Kafka broker for the session, started by the
  project itself (``LocalBroker``) on free ports in a temporary folder, with a
  SASL_PLAINTEXT (SCRAM-SHA-512) listener for a known test user.
- ``kafka_settings`` / ``make_kafka_settings``: Settings pointing at that broker,
  with topic and group names unique to the test, so tests never see each
  other's data.
- ``shared_data``: the benchmark data folder ``../shared/data``, or a skip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamae.config import Settings
from streamae.exceptions import BrokerError
from streamae.kafka.broker import KAFKA_VERSION, SCRAM_MECHANISM, LocalBroker

# Torch's OpenMP threads spin while they wait; on cores shared with other processes
# (the broker, other test runs) that makes small models many times slower. Set
# before any test module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

# What the session broker reported, for the terminal summary.
_BROKER_BANNER: list[str] = []


@dataclasses.dataclass(frozen=True)
class KafkaTestBroker:
    """The session's broker: where to reach it, and the LocalBroker behind it."""

    bootstrap: str
    sasl_bootstrap: str
    sasl_user: str
    sasl_password: str
    version: str
    data_dir: Path
    broker: LocalBroker


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (held together while chosen, so never the same)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaTestBroker]:
    """A real Kafka broker for the whole session, stopped at its end."""
    password = secrets.token_urlsafe(16)
    port, controller_port, sasl_port = _free_ports(3)
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka"),
        port=port,
        controller_port=controller_port,
        sasl_port=sasl_port,
        sasl_user="streamae-test",
        sasl_password=password,
        start_timeout_s=120.0,
    )
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"could not start the test Kafka broker: {exc}", pytrace=False)
    assert broker.sasl_bootstrap is not None
    _BROKER_BANNER.append(
        f"Apache Kafka {broker.version} at {broker.bootstrap} "
        f"(SASL_PLAINTEXT {SCRAM_MECHANISM} at {broker.sasl_bootstrap})"
    )
    try:
        yield KafkaTestBroker(
            bootstrap=broker.bootstrap,
            sasl_bootstrap=broker.sasl_bootstrap,
            sasl_user=broker.sasl_user,
            sasl_password=password,
            version=broker.version or "unknown",
            data_dir=broker.data_dir,
            broker=broker,
        )
    finally:
        broker.stop()


@pytest.fixture
def make_kafka_settings(kafka_broker: KafkaTestBroker) -> Callable[..., Settings]:
    """A factory of Settings for the session broker with fresh topic and group names.

    ``sasl=True`` points at the SASL listener with the test user's credentials;
    other keyword arguments override settings. Each call gets its own names.
    The environment is ignored so a developer's STREAMAE_* variables cannot leak in.
    """

    def make(*, sasl: bool = False, **overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:10]
        values: dict[str, Any] = {
            "bootstrap_servers": kafka_broker.bootstrap,
            "readings_topic": f"readings-{tag}",
            "scores_topic": f"scores-{tag}",
            "alerts_topic": f"alerts-{tag}",
            "dead_letter_topic": f"dead-letter-{tag}",
            "state_topic": f"state-{tag}",
            "group_id": f"group-{tag}",
        }
        if sasl:
            values |= {
                "bootstrap_servers": kafka_broker.sasl_bootstrap,
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": SCRAM_MECHANISM,
                "sasl_username": kafka_broker.sasl_user,
                "sasl_password": kafka_broker.sasl_password,
            }
        return Settings.load(env={}, **(values | overrides))

    return make


@pytest.fixture
def kafka_settings(make_kafka_settings: Callable[..., Settings]) -> Settings:
    """Settings for the session broker, with topic and group names unique to this test."""
    return make_kafka_settings()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared benchmark data (NAB, SKAB, ...), or skip when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present (benchmark data is not shipped)")
    return SHARED_DATA


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that uses the broker is a Kafka test, marked or not (`-m "not kafka"` skips it).
    for item in items:
        if "kafka_broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


def pytest_report_header() -> str:
    return f"kafka: Apache Kafka {KAFKA_VERSION} (local broker, started on first use)"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _BROKER_BANNER:
        terminalreporter.write_line(f"kafka: {line}")
