"""The benchmark's Kafka side: its topics, loading readings, and reading them back.

Every run uses topics of its own (``bench-<tag>-...``) and deletes them at the
end, so it can share a broker with anything else. The scores topic stamps each
record with the broker's append time (``LogAppendTime``): a score's record
timestamp is then the moment it was published, whatever the monitor's producer did.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence

import msgspec
import numpy as np
from kafka import TopicPartition
from kafka.partitioner.default import murmur2
from tqdm import tqdm

from streamae.config import Settings
from streamae.exceptions import KafkaUnavailable
from streamae.kafka.clients import kafka_errors, make_admin, make_consumer, make_producer
from streamae.messages import decode_reading

log = logging.getLogger(__name__)

# The loader batches hard: it sets the scene and is not what is measured.
LOAD_LINGER_MS = 50
LOAD_BATCH_BYTES = 512 * 1024
LOAD_MAX_BLOCK_MS = 30_000


def create_topics(settings: Settings) -> None:
    """The readings and scores topics (scores stamped with ``LogAppendTime``)."""
    admin = make_admin(settings)
    try:
        with kafka_errors(settings, "creating the benchmark topics"):
            admin.create_topics(
                {
                    settings.readings_topic: {"num_partitions": settings.readings_partitions},
                    settings.scores_topic: {
                        "num_partitions": settings.readings_partitions,
                        "configs": {"message.timestamp.type": "LogAppendTime"},
                    },
                },
                wait_for_metadata=True,
            )
    finally:
        admin.close()


def delete_topics(settings: Settings) -> None:
    """Delete every topic of this run; a failure is only logged (the run's data is disposable)."""
    names = [
        settings.readings_topic,
        settings.scores_topic,
        settings.alerts_topic,
        settings.dead_letter_topic,
        settings.state_topic,
    ]
    admin = make_admin(settings)
    try:
        # A client of the run that is still winding down can auto-create a topic
        # again by asking for its metadata: delete until none is left (bounded).
        deadline = time.monotonic() + 15
        while existing := [name for name in names if name in set(admin.list_topics())]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{', '.join(existing)} keep coming back")
            admin.delete_topics(existing)
            time.sleep(1)
    except Exception as exc:  # cleanup must not hide the run's own result or error
        log.warning("could not delete the benchmark topics %s: %s", ", ".join(names), exc)
    finally:
        admin.close()


class Loader:
    """A producer of readings records that returns each record's produce time (CreateTime).

    Keys go to the partition Kafka's default partitioner picks (murmur2), computed
    once per key rather than per record.
    """

    def __init__(self, settings: Settings, *, bulk: bool = True) -> None:
        self.settings = settings
        self._partitions: dict[bytes, int] = {}
        self._failures: list[BaseException] = []
        # In bulk the producer waits to fill large batches; otherwise it is a
        # sensor's ordinary producer, whose linger counts in the measured latency.
        bulk_options = {"linger_ms": LOAD_LINGER_MS, "batch_size": LOAD_BATCH_BYTES}
        self._producer = make_producer(
            settings, max_block_ms=LOAD_MAX_BLOCK_MS, **(bulk_options if bulk else {})
        )

    def send(self, key: bytes, value: bytes) -> int:
        """Send one record; returns its timestamp (epoch ms)."""
        partition = self._partitions.get(key)
        if partition is None:
            partition = (murmur2(key) & 0x7FFFFFFF) % self.settings.readings_partitions
            self._partitions[key] = partition
        stamp = int(time.time() * 1000)
        with kafka_errors(self.settings, "loading readings"):
            future = self._producer.send(
                self.settings.readings_topic,
                key=key,
                value=value,
                partition=partition,
                timestamp_ms=stamp,
            )
        if future.is_done:
            self._check(future)
        else:
            future.add_errback(self._failures.append)
        return stamp

    def send_all(self, messages: Sequence[tuple[bytes, bytes]], progress: bool) -> None:
        """Send ``messages`` as fast as possible and wait until the broker has them all."""
        for key, value in tqdm(
            messages, desc="load", unit="rec", file=sys.stderr, disable=not progress, leave=False
        ):
            self.send(key, value)
        self.flush()

    def flush(self) -> None:
        with kafka_errors(self.settings, "loading readings"):
            self._producer.flush()
        if self._failures:
            raise KafkaUnavailable(
                f"readings were not delivered to {self.settings.readings_topic!r}: "
                f"{self._failures[0]}"
            )

    def close(self) -> None:
        self._producer.close(timeout=5)

    def _check(self, future) -> None:
        if future.failed():
            self._failures.append(future.exception)


def consume_rate(settings: Settings, expected: int, timeout_s: float) -> tuple[float, float, int]:
    """Readings/s a bare consumer reads and decodes from the start of the readings topic.

    Same client settings as the monitor's consumer, no group, no scoring. Returns
    readings per second of wall time and of CPU time, and the number of readings
    read (fewer than ``expected`` on timeout).
    """
    consumer = make_consumer(settings, max_poll_records=settings.max_poll_records)
    try:
        with kafka_errors(settings, "reading the readings topic"):
            parts = [
                TopicPartition(settings.readings_topic, p)
                for p in sorted(consumer.partitions_for_topic(settings.readings_topic) or ())
            ]
            consumer.assign(parts)
            consumer.seek_to_beginning()
            read = 0
            cpu = time.process_time()
            start = time.perf_counter()
            while read < expected and time.perf_counter() - start < timeout_s:
                batch = consumer.poll(timeout_ms=settings.max_batch_wait_ms)
                for records in batch.values():
                    for record in records:
                        decode_reading(record.value)
                    read += len(records)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
    finally:
        consumer.close()
    return read / elapsed, read / max(cpu, 1e-9), read


class _ScoreKey(msgspec.Struct):
    sensor_id: str
    ts: int


def score_latencies(settings: Settings, sent: dict[tuple[str, int], int]) -> np.ndarray:
    """Milliseconds from each reading in ``sent`` ((sensor_id, ts) → produce time) to its score.

    A score's time is its record's append time on the scores topic.
    """
    decoder = msgspec.json.Decoder(_ScoreKey)
    latencies: list[int] = []
    consumer = make_consumer(settings)
    try:
        with kafka_errors(settings, "reading the scores topic"):
            parts = [
                TopicPartition(settings.scores_topic, p)
                for p in sorted(consumer.partitions_for_topic(settings.scores_topic) or ())
            ]
            consumer.assign(parts)
            consumer.seek_to_beginning()
            ends = consumer.end_offsets(parts)
            deadline = time.monotonic() + 60
            while (
                any(consumer.position(tp) < ends[tp] for tp in parts)
                and time.monotonic() < deadline
            ):
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        score = decoder.decode(record.value)
                        produced = sent.get((score.sensor_id, score.ts))
                        if produced is not None:
                            latencies.append(record.timestamp - produced)
    finally:
        consumer.close()
    return np.asarray(latencies, dtype=np.float64)
