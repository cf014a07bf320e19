"""The kafka-python adapters against the session's real broker."""

from __future__ import annotations

import socket

import pytest
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from streamae.config import Settings
from streamae.exceptions import ConfigError, KafkaAuthError, KafkaUnavailable
from streamae.kafka.clients import (
    client_config,
    ensure_topics,
    kafka_errors,
    make_admin,
    make_consumer,
    make_producer,
    position,
    wait_until_reachable,
)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _consume_all(settings: Settings, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = make_consumer(settings, topic, consumer_timeout_ms=10_000)
    try:
        received = []
        for record in consumer:
            received.append((record.key, record.value))
            if len(received) == expected:
                break
    finally:
        consumer.close()
    return received


def test_client_config_passes_only_what_is_set():
    plain = client_config(Settings.load(env={}, bootstrap_servers="a:1,b:2"))
    assert plain == {
        "bootstrap_servers": ["a:1", "b:2"],
        "client_id": "streamae",
        "security_protocol": "PLAINTEXT",
    }
    sasl = client_config(
        Settings.load(
            env={},
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="u",
            sasl_password="pw",
            ssl_cafile="/ca.pem",
        )
    )
    assert sasl["sasl_plain_password"] == "pw"
    assert sasl["ssl_cafile"] == "/ca.pem"
    assert "ssl_certfile" not in sasl and "ssl_password" not in sasl


def test_produce_consume_round_trip(kafka_settings):
    topic = kafka_settings.readings_topic
    ensure_topics(kafka_settings, {topic: 1})
    sent = [(f"pump-{i}".encode(), f'{{"n": {i}}}'.encode()) for i in range(20)]
    producer = make_producer(kafka_settings)
    try:
        for key, value in sent:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()
    assert _consume_all(kafka_settings, topic, len(sent)) == sent


def test_ensure_topics_creates_partitions_and_compacts_state(kafka_settings):
    topics = {kafka_settings.readings_topic: 3, kafka_settings.state_topic: 2}
    assert sorted(ensure_topics(kafka_settings, topics)) == sorted(topics)
    assert ensure_topics(kafka_settings, topics) == []  # already there: nothing to do

    admin = make_admin(kafka_settings)
    try:
        described = {t["name"]: t for t in admin.describe_topics(list(topics))}
        configs = admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name)
                for name in (kafka_settings.readings_topic, kafka_settings.state_topic)
            ]
        )["topic"]
    finally:
        admin.close()
    assert {name: len(t["partitions"]) for name, t in described.items()} == topics
    assert configs[kafka_settings.state_topic]["cleanup.policy"]["value"] == "compact"
    readings_policy = configs[kafka_settings.readings_topic].get("cleanup.policy")
    assert readings_policy is None or readings_policy["value"] == "delete"


def test_unreachable_bootstrap_is_kafka_unavailable_with_advice():
    address = f"127.0.0.1:{_unused_port()}"
    settings = Settings.load(env={}, bootstrap_servers=address)
    with pytest.raises(KafkaUnavailable) as caught:
        make_producer(settings, bootstrap_timeout_ms=1000)
    assert not isinstance(caught.value, KafkaAuthError)
    message = str(caught.value)
    assert address in message
    assert "streamae broker start" in message and "STREAMAE_BOOTSTRAP_SERVERS" in message


def test_a_request_the_broker_refuses_is_not_reported_as_unreachable(kafka_settings):
    topic = f"twice-{_unused_port()}"
    admin = make_admin(kafka_settings)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
        with pytest.raises(KafkaUnavailable) as caught, kafka_errors(kafka_settings, "testing"):
            admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    message = str(caught.value)
    assert "refused the request while testing: TopicAlreadyExistsError" in message
    assert "not reachable" not in message and "streamae broker start" not in message


def test_sasl_with_the_right_password_works(make_kafka_settings):
    settings = make_kafka_settings(sasl=True)
    wait_until_reachable(settings, timeout_s=10)
    topic = settings.readings_topic
    producer = make_producer(settings)
    try:
        producer.send(topic, key=b"k", value=b"over sasl").get(timeout=30)
    finally:
        producer.close()
    assert _consume_all(settings, topic, 1) == [(b"k", b"over sasl")]


def test_wrong_sasl_password_is_kafka_auth_error(make_kafka_settings):
    settings = make_kafka_settings(sasl=True, sasl_password="not-the-password")
    with pytest.raises(KafkaAuthError) as caught:
        wait_until_reachable(settings, timeout_s=3)
    message = str(caught.value)
    assert settings.bootstrap_servers in message
    assert "STREAMAE_SASL_PASSWORD" in message
    assert "not-the-password" not in message


def test_invalid_client_options_are_a_config_error(kafka_settings):
    with pytest.raises(ConfigError, match="invalid Kafka client configuration"):
        make_producer(kafka_settings, delivery_timeout_ms=1)


class _LostConsumer:
    """kafka-python's answer when a position lookup failed: None, not an offset."""

    def position(self, tp: TopicPartition) -> None:
        return None


def test_a_position_kafka_python_could_not_look_up_is_an_outage_not_a_crash():
    settings = Settings.load(env={}, bootstrap_servers=f"127.0.0.1:{_unused_port()}")
    expected = "not reachable while reading .*no offset for state partition 3"
    with pytest.raises(KafkaUnavailable, match=expected), kafka_errors(settings, "reading"):
        position(_LostConsumer(), TopicPartition("state", 3))
