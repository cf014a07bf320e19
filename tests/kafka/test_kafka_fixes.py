"""streamae.kafka.fixes against the session's real broker."""

from __future__ import annotations

import time
import uuid

from streamae.kafka.clients import ensure_topics, make_consumer


def _poll_until(consumer, predicate, timeout_s: float, poll_ms: int) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=poll_ms)


def test_a_rejoin_whose_poll_times_out_mid_join_still_takes_the_new_assignment(kafka_settings):
    first, second = kafka_settings.readings_topic, kafka_settings.scores_topic
    ensure_topics(kafka_settings, {first: 2, second: 2})
    consumer = make_consumer(kafka_settings, group_id=f"fixes-{uuid.uuid4().hex[:8]}")
    try:
        consumer.subscribe([first])
        _poll_until(consumer, consumer.assignment, timeout_s=30, poll_ms=100)
        assert {tp.topic for tp in consumer.assignment()} == {first}

        # A subscription change makes kafka-python rejoin on its own account; polls of
        # 1 ms time out while JoinGroup/SyncGroup are in flight, every time.
        consumer.subscribe([first, second])
        _poll_until(
            consumer,
            lambda: {tp.topic for tp in consumer.assignment()} == {first, second},
            timeout_s=30,
            poll_ms=1,
        )
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    finally:
        consumer.close()
    assert assigned == {(first, 0), (first, 1), (second, 0), (second, 1)}
