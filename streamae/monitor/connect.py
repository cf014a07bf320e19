"""The monitor's Kafka clients: its topics ensured, a group consumer, a producer, a state reader.

At-least-once, the producer is idempotent; exactly-once, it is transactional,
its transactional id ``streamae.<group>.<instance>`` stable across restarts of
the same instance: starting it fences a previous incarnation and aborts the
transaction that one left open. Both consumers then read committed records only.
With ``instance_id`` set the consumer is a static group member: a restart within
the session timeout gets its partitions back without a rebalance.

>>> clients = open_clients(settings, from_beginning=False, listener=None)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka import errors as kerr

from streamae.config import Settings
from streamae.exceptions import ConfigError
from streamae.kafka.clients import ensure_topics, kafka_errors, make_consumer, make_producer

log = logging.getLogger(__name__)

# A monitor that dies should hand its partitions over within seconds. Heartbeats
# run on kafka-python's IO thread, so a slow batch does not count against this.
SESSION_TIMEOUT_MS = 10_000
# Also the rebalance timeout: how long the broker holds a rebalance for members
# that do not rejoin (kafka-python's 300 s default made a stalled rebalance stop a
# monitor for five minutes). A batch takes seconds, so a minute between polls is ample.
MAX_POLL_INTERVAL_MS = 60_000
# An open transaction of a monitor that died (and is not restarted under the same
# instance id) holds back read_committed consumers until the broker aborts it.
TRANSACTION_TIMEOUT_MS = 30_000
# kafka-python backs off reconnecting up to 30 s by default; a broker that comes
# back should be noticed within seconds.
RECONNECT_BACKOFF_MAX_MS = 2_000
CLOSE_TIMEOUT_S = 5.0


@dataclass
class Clients:
    """The monitor's clients; ``close`` closes them all."""

    consumer: KafkaConsumer
    producer: KafkaProducer
    state_consumer: KafkaConsumer

    def close(self) -> None:
        """Leave the group first (its revoke hook checkpoints), then close the others."""
        closes = (
            lambda: self.consumer.close(autocommit=False),
            self.state_consumer.close,
            # Results were flushed at the last checkpoint; do not wait on a broker
            # that is gone (the records left belong to an uncommitted batch).
            lambda: self.producer.close(timeout=CLOSE_TIMEOUT_S),
        )
        for close in closes:
            try:
                close()
            except kerr.KafkaError as exc:  # everything that matters was committed before
                log.warning("closing a Kafka client: %s", exc)


def instance_name(settings: Settings) -> str:
    """This monitor's stable name: ``instance_id``, else the host name."""
    return settings.instance_id or socket.gethostname()


def transactional_id(settings: Settings) -> str:
    return f"streamae.{settings.group_id}.{instance_name(settings)}"


def open_clients(
    settings: Settings, *, from_beginning: bool, listener: ConsumerRebalanceListener | None
) -> Clients:
    """Ensure the topics; a consumer subscribed to the readings, a producer, a state reader.

    The consumer never auto-commits: the monitor commits after publishing.
    """
    ensure_monitor_topics(settings)
    isolation = "read_committed" if settings.delivery == "exactly-once" else "read_uncommitted"
    common = {"reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS}
    producer = make_monitor_producer(settings)
    opened: list = [producer]
    try:
        membership = {"group_instance_id": settings.instance_id} if settings.instance_id else {}
        consumer = make_consumer(
            settings,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            max_poll_records=settings.max_poll_records,
            fetch_min_bytes=settings.fetch_min_bytes,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            isolation_level=isolation,
            **membership,
            **common,
        )
        opened.append(consumer)
        state_consumer = make_consumer(
            settings, group_id=None, isolation_level=isolation, max_poll_records=5000, **common
        )
        opened.append(state_consumer)
        with kafka_errors(settings, f"subscribing to {settings.readings_topic}"):
            # Refresh the metadata after subscribing, before joining: the group
            # leader's first assignment then knows the topic's partitions. Without
            # it the leader can assign from an empty snapshot, and kafka-python
            # rejoins at once (a second rebalance at 19 of 20 starts in one test).
            consumer.subscribe([settings.readings_topic], listener=listener)
            consumer.topics()
    except BaseException:
        for client in opened:
            client.close()
        raise
    return Clients(consumer, producer, state_consumer)


def make_monitor_producer(settings: Settings) -> KafkaProducer:
    """The results producer; transactional (and initialised) in exactly-once mode."""
    options: dict = {
        # A broker that is away for less than broker_give_up_s only delays results
        # (kafka-python wants more than its 30 s request timeout here).
        "delivery_timeout_ms": max(int(settings.broker_give_up_s * 1000), 31_000),
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    if settings.delivery != "exactly-once":
        return make_producer(settings, **options)
    txn_id = transactional_id(settings)
    producer = make_producer(
        settings,
        transactional_id=txn_id,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        **options,
    )
    try:
        with kafka_errors(settings, f"initialising transactions as {txn_id!r}"):
            producer.init_transactions()
    except BaseException:
        with contextlib.suppress(kerr.KafkaError):
            producer.close(timeout=CLOSE_TIMEOUT_S)
        raise
    log.info("exactly-once: transactional id %r", txn_id)
    return producer


def ensure_monitor_topics(settings: Settings) -> None:
    """Create missing topics; the state topic with as many partitions as the readings.

    A sensor's state is written to the partition number of its readings, so the
    state topic needs at least as many partitions as the readings topic.
    """
    ensure_topics(
        settings,
        {
            settings.readings_topic: settings.readings_partitions,
            settings.scores_topic: settings.readings_partitions,
            settings.alerts_topic: 1,
            settings.dead_letter_topic: 1,
        },
    )
    readings = partition_count(settings, settings.readings_topic)
    ensure_topics(settings, {settings.state_topic: readings})
    state = partition_count(settings, settings.state_topic)
    if state < readings:
        raise ConfigError(
            f"the state topic {settings.state_topic!r} has {state} partitions but the readings "
            f"topic {settings.readings_topic!r} has {readings}: a sensor's state lives in the "
            "partition number of its readings; add partitions to the state topic (or use a new "
            f"one, {Settings.env_var('state_topic')})"
        )


def partition_count(settings: Settings, topic: str) -> int:
    consumer = make_consumer(settings)
    try:
        with kafka_errors(settings, f"reading the metadata of {topic}"):
            return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


def consumer_lag(consumer: KafkaConsumer, timeout_ms: int = 2_000) -> int | None:
    """Records between the consumer's positions and the ends of its partitions (None: unknown)."""
    try:
        assigned = list(consumer.assignment())
        ends = consumer.end_offsets(assigned, timeout_ms=timeout_ms) if assigned else {}
        return sum(
            max(0, ends[tp] - (consumer.position(tp, timeout_ms=timeout_ms) or 0))
            for tp in assigned
        )
    except kerr.KafkaError as exc:  # a metric must not stop the monitor
        log.debug("consumer lag unknown: %s", exc)
        return None
