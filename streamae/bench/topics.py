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

import confluent_kafka
import msgspec
import numpy as np
from kafka import TopicPartition
from kafka.partitioner.default import murmur2
from tqdm import tqdm

from streamae.config import Settings
from streamae.exceptions import KafkaUnavailable
from streamae.kafka.clients import (
    client_config,
    kafka_errors,
    make_admin,
    make_consumer,
    position,
)
from streamae.messages import decode_reading

log = logging.getLogger(__name__)

# The loader batches hard: it sets the scene and is not what is measured.
LOAD_LINGER_MS = 50
LOAD_BATCH_BYTES = 512 * 1024
LOAD_FLUSH_TIMEOUT_S = 30.0


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


def committed_readings(settings: Settings) -> int:
    """Readings the monitors' group committed (the topic is fresh: offsets from 0).

    At-least-once, an offset is committed only after the results of the readings
    before it were acknowledged, so this counts the readings whose results are
    published.
    """
    admin = make_admin(settings)
    try:
        with kafka_errors(settings, f"reading the offsets of group {settings.group_id}"):
            offsets = admin.list_group_offsets({settings.group_id: None}).get(settings.group_id, {})
    finally:
        admin.close()
    return sum(
        max(meta.offset, 0) for tp, meta in offsets.items() if tp.topic == settings.readings_topic
    )


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

    It is librdkafka (confluent-kafka), not kafka-python like the product: the load
    generator shares the machine with the monitor it measures, and offers 8,000
    readings/s with about 18% of a core where kafka-python took 57%. Keys go to the
    partition Kafka's default partitioner picks (murmur2), computed once per key.
    """

    def __init__(self, settings: Settings, *, bulk: bool = True) -> None:
        self.settings = settings
        self._partitions: dict[bytes, int] = {}
        self._failures: list[str] = []
        self._last_error = ""
        # In bulk the producer waits to fill large batches; otherwise it is a
        # sensor's ordinary producer, whose linger counts in the measured latency.
        linger, batch = (LOAD_LINGER_MS, LOAD_BATCH_BYTES) if bulk else (5, 256 * 1024)
        config = {
            **_librdkafka_config(settings),
            "acks": "all",
            # Keeps each partition in send order through retries. Without it, a batch
            # retried after a fresh broker's first hiccups landed behind later ones,
            # and the monitor rightly dropped those sensors' older readings as late.
            "enable.idempotence": True,
            "linger.ms": linger,
            "batch.size": batch,
            "compression.type": "lz4",
            # A record not delivered by then fails, and so does the run (not after 300 s).
            "message.timeout.ms": int(LOAD_FLUSH_TIMEOUT_S * 1000),
            "error_cb": self._error,
            "logger": log,  # librdkafka's own log lines, through ours
        }
        try:
            self._producer = confluent_kafka.Producer(config)
        except confluent_kafka.KafkaException as exc:
            raise KafkaUnavailable(f"cannot start the benchmark's load producer: {exc}") from exc

    def send(self, key: bytes, value: bytes) -> int:
        """Send one record; returns its timestamp (epoch ms)."""
        partition = self._partitions.get(key)
        if partition is None:
            partition = (murmur2(key) & 0x7FFFFFFF) % self.settings.readings_partitions
            self._partitions[key] = partition
        stamp = int(time.time() * 1000)
        deadline = time.monotonic() + LOAD_FLUSH_TIMEOUT_S
        while True:
            if self._failures or time.monotonic() > deadline:
                self.flush()  # raises, with the reason
            try:
                self._producer.produce(
                    self.settings.readings_topic,
                    value=value,
                    key=key,
                    partition=partition,
                    timestamp=stamp,
                    on_delivery=self._delivered,
                )
                break
            except BufferError:  # its queue is full: let it deliver some first
                self._producer.poll(0.05)
            except confluent_kafka.KafkaException as exc:
                raise KafkaUnavailable(f"loading readings: {exc}") from exc
        self._producer.poll(0)
        return stamp

    def send_all(self, messages: Sequence[tuple[bytes, bytes]], progress: bool) -> None:
        """Send ``messages`` as fast as possible and wait until the broker has them all."""
        for key, value in tqdm(
            messages, desc="load", unit="rec", file=sys.stderr, disable=not progress, leave=False
        ):
            self.send(key, value)
        self.flush()

    def flush(self) -> None:
        left = self._producer.flush(LOAD_FLUSH_TIMEOUT_S)
        if left or self._failures:
            reason = self._failures[0] if self._failures else f"{left} still queued"
            if self._last_error:
                reason += f" ({self._last_error})"
            raise KafkaUnavailable(
                f"readings were not delivered to {self.settings.readings_topic!r}: {reason}"
            )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None  # librdkafka stops (and stops reconnecting) with it

    def _delivered(self, error, _message) -> None:
        if error is not None:
            self._failures.append(str(error))

    def _error(self, error) -> None:
        self._last_error = str(error)
        log.debug("load producer: %s", error)


#: ``client_config``'s kafka-python names → librdkafka's.
_LIBRDKAFKA_NAMES = {
    "bootstrap_servers": "bootstrap.servers",
    "client_id": "client.id",
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
}


def _librdkafka_config(settings: Settings) -> dict[str, str]:
    """``client_config`` in librdkafka's names."""
    config = client_config(settings)
    config["bootstrap_servers"] = ",".join(config["bootstrap_servers"])
    return {_LIBRDKAFKA_NAMES[key]: value for key, value in config.items()}


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
                any(position(consumer, tp) < ends[tp] for tp in parts)
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
