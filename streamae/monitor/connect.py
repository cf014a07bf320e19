"""The monitor's Kafka clients: its topics ensured, a group consumer, a producer.

>>> consumer, producer = open_clients(settings, from_beginning=False, listener=None)  # doctest: +SKIP
"""

from __future__ import annotations

import logging

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka import errors as kerr

from streamae.config import Settings
from streamae.kafka.clients import ensure_topics, kafka_errors, make_consumer, make_producer

log = logging.getLogger(__name__)

# A monitor that dies should hand its partitions over within seconds. Heartbeats
# run on kafka-python's IO thread, so a slow batch does not count against this.
SESSION_TIMEOUT_MS = 10_000


def open_clients(
    settings: Settings, *, from_beginning: bool, listener: ConsumerRebalanceListener | None
) -> tuple[KafkaConsumer, KafkaProducer]:
    """Ensure the topics; a consumer subscribed to the readings, and a producer.

    The consumer never auto-commits: the monitor commits after publishing.
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
    # A broker that is away for less than broker_give_up_s only delays results.
    producer = make_producer(settings, delivery_timeout_ms=int(settings.broker_give_up_s * 1000))
    try:
        consumer = make_consumer(
            settings,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
            max_poll_records=settings.max_poll_records,
            session_timeout_ms=SESSION_TIMEOUT_MS,
        )
        with kafka_errors(settings, f"subscribing to {settings.readings_topic}"):
            consumer.subscribe([settings.readings_topic], listener=listener)
    except BaseException:
        producer.close()
        raise
    return consumer, producer


def consumer_lag(consumer: KafkaConsumer) -> int | None:
    """Records between the consumer's positions and the ends of its partitions (None: unknown)."""
    try:
        assigned = list(consumer.assignment())
        ends = consumer.end_offsets(assigned) if assigned else {}
        return sum(max(0, ends[tp] - (consumer.position(tp) or 0)) for tp in assigned)
    except kerr.KafkaError as exc:  # a metric must not stop the monitor
        log.debug("consumer lag unknown: %s", exc)
        return None
