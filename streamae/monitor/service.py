"""The live monitor: readings from Kafka through the detection core, results back to Kafka.

Kafka is an adapter around ``Pipeline``. Each batch is::

    poll → decode → pipeline.process → publish → flush producer → commit offsets

Offsets are committed only once the broker has acknowledged everything the batch
produced, so a crash replays the batch (duplicates) and loses nothing
(at-least-once). Records that are not readings, and readings the pipeline
rejects, go to the dead-letter topic with the reason; the monitor never stops
on bad input.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kafka import TopicPartition
from kafka import errors as kerr
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from streamae.config import Settings
from streamae.detectors.base import Detector
from streamae.exceptions import ConfigError, InvalidReading, KafkaUnavailable
from streamae.kafka.clients import kafka_errors
from streamae.messages import Alert, DeadLetter, Reading, decode_reading, encode
from streamae.monitor.connect import consumer_lag, open_clients
from streamae.monitor.metrics import MonitorMetrics
from streamae.monitor.rebalance import PartitionHandover
from streamae.pipeline import DetectorRegistry, Output, Pipeline

log = logging.getLogger(__name__)

# A dead letter carries the raw record; capping it keeps a huge junk payload from
# making the dead letter itself too large to publish.
MAX_DEAD_LETTER_RAW = 64 * 1024
LAG_REFRESH_S = 5.0


@dataclass
class Decoded:
    """One batch of records, decoded: readings with their records, and the invalid ones."""

    readings: list[Reading] = field(default_factory=list)
    origins: list[ConsumerRecord] = field(default_factory=list)
    invalid: list[tuple[ConsumerRecord, str]] = field(default_factory=list)


def _position(item: tuple[ConsumerRecord, str]) -> tuple[int, int]:
    return item[0].partition, item[0].offset


class Monitor:
    """A consumer-group member that scores the readings of its partitions.

    >>> Monitor(settings, detector).run(stop_event)  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Settings,
        detectors: DetectorRegistry | Detector,
        *,
        from_beginning: bool = False,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        if settings.delivery != "at-least-once":
            raise ConfigError(
                f"the monitor delivers at-least-once; delivery {settings.delivery!r} is not "
                f"supported yet (set {Settings.env_var('delivery')}=at-least-once)"
            )
        self.settings = settings
        self.pipeline = Pipeline(settings, detectors)
        self.metrics = MonitorMetrics()
        self._from_beginning = from_beginning
        self._on_alert = on_alert
        self._consumer = None
        self._producer = None
        #: The readings partitions this monitor owns now.
        self.assigned: set[TopicPartition] = set()
        self._partition_of: dict[str, TopicPartition] = {}  # sensor → where its readings arrive
        self._open_alerts: dict[str, set[str]] = {}  # sensor → ids of its open alerts
        # Since the last checkpoint: sends in flight, next offset per partition,
        # Kafka timestamps of the readings scored, alerts to report once published.
        self._sends: list = []
        self._offsets: dict[TopicPartition, int] = {}
        self._scored_at: list[int] = []
        self._alerts: list[Alert] = []
        self._next_lag = self._next_summary = 0.0

    def run(self, stop: threading.Event | None = None, max_runtime_s: float | None = None) -> None:
        """Consume until ``stop`` is set or ``max_runtime_s`` passes; checkpoint; close."""
        stop = stop or threading.Event()
        deadline = math.inf if max_runtime_s is None else time.monotonic() + max_runtime_s
        self._connect()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                self.step()
            # Readings held back for reordering are consumed already: score them now.
            self._publish(self.pipeline.flush(), Decoded())
            self.checkpoint(self._commit)
        except BaseException:
            self._offsets.clear()  # never commit what may not have been published
            raise
        finally:
            self._close()

    def step(self) -> None:
        """One batch: poll → decode → pipeline.process → publish → checkpoint."""
        with kafka_errors(self.settings, f"polling {self.settings.readings_topic}"):
            batch = self._consumer.poll(timeout_ms=self.settings.max_batch_wait_ms)
        records = [record for part in batch.values() for record in part]
        if records:
            decoded = self._decode(records)
            output = self.pipeline.process(decoded.readings)
            self._publish(output, decoded)
            for tp, part in batch.items():
                self._offsets[tp] = part[-1].offset + 1
            self.metrics.readings.inc(len(records))
            self.metrics.batch_size.observe(len(records))
        self.checkpoint(self._commit)
        self._tick()

    def _decode(self, records: Iterable[ConsumerRecord]) -> Decoded:
        """The valid readings, the record each came from, and the invalid records."""
        decoded = Decoded()
        for record in records:
            try:
                reading = decode_reading(record.value)
            except InvalidReading as exc:
                decoded.invalid.append((record, str(exc)))
                continue
            decoded.readings.append(reading)
            decoded.origins.append(record)
            self._partition_of[reading.sensor_id] = TopicPartition(record.topic, record.partition)
        return decoded

    def _publish(self, output: Output, decoded: Decoded) -> None:
        """Send dead letters (invalid or rejected records, in offset order), scores and alerts."""
        rejected = [(decoded.origins[index], reason) for index, reason in output.rejected]
        for record, error in sorted(decoded.invalid + rejected, key=_position):
            self._dead_letter(record, error)
        stamps = {
            (r.sensor_id, r.ts_ms): o.timestamp
            for r, o in zip(decoded.readings, decoded.origins, strict=True)
        }
        settings = self.settings
        for score in output.scores:
            self._send(settings.scores_topic, score.sensor_id.encode(), encode(score))
            if (score.sensor_id, score.ts) in stamps:
                self._scored_at.append(stamps[score.sensor_id, score.ts])
        for alert in output.alerts:
            self._send(settings.alerts_topic, alert.sensor_id.encode(), encode(alert))
            ids = self._open_alerts.setdefault(alert.sensor_id, set())
            if alert.state == "open":
                ids.add(alert.alert_id)
                self.metrics.alerts_opened.inc()
            else:
                ids.discard(alert.alert_id)
                self.metrics.alerts_closed.inc()
        self._alerts.extend(output.alerts)
        self.metrics.windows.inc(len(output.scores))
        self.metrics.open_alerts.set(sum(map(len, self._open_alerts.values())))

    def _dead_letter(self, record: ConsumerRecord, error: str) -> None:
        raw = record.value or b""
        if len(raw) > MAX_DEAD_LETTER_RAW:
            error += f" (raw value cut to its first {MAX_DEAD_LETTER_RAW} of {len(raw)} bytes)"
            raw = raw[:MAX_DEAD_LETTER_RAW]
        letter = DeadLetter.of(
            error, record.topic, record.partition, record.offset, record.key, raw
        )
        self._send(self.settings.dead_letter_topic, record.key, encode(letter))
        self.metrics.dead_letters.inc()

    def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        with kafka_errors(self.settings, f"publishing to {topic}"):
            self._sends.append(self._producer.send(topic, value=value, key=key))

    def checkpoint(self, commit: Callable[[dict[TopicPartition, OffsetAndMetadata]], None]) -> None:
        """Make everything processed so far durable, in this order:

        1. publish scores, alerts and dead letters (sent while processing);
        2. flush the producer and check the broker acknowledged every send;
        3. commit the consumed offsets with ``commit``.

        If 2 fails nothing is committed and ``KafkaUnavailable`` is raised: the
        batch is replayed after a restart (at-least-once).
        """
        with kafka_errors(self.settings, "publishing results"):
            self._producer.flush()
        failed = [send.exception for send in self._sends if send.failed()]
        self._sends.clear()
        if failed:
            self._offsets.clear()
            raise KafkaUnavailable(
                f"{len(failed)} result message(s) were not published ({failed[0]}); "
                "offsets were not committed, so a restart replays them"
            )
        now_ms = time.time() * 1000
        for stamp in self._scored_at:
            self.metrics.latency.observe(max(0.0, now_ms - stamp) / 1000)
        self._scored_at.clear()
        if self._offsets:
            commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._offsets.items()})
            self._offsets.clear()
        if self._on_alert is not None:
            for alert in self._alerts:
                self._on_alert(alert)
        self._alerts.clear()

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        try:
            with kafka_errors(self.settings, "committing offsets"):
                self._consumer.commit(offsets)
        except KafkaUnavailable as exc:
            if not isinstance(
                exc.__cause__, kerr.CommitFailedError | kerr.RebalanceInProgressError
            ):
                raise
            # The group moved these partitions meanwhile: their new owner replays
            # the batch from the last commit (duplicates, never losses).
            log.warning("offsets not committed, the group is rebalancing: %s", exc.__cause__)

    def handover(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: publish, flush and commit what was processed.

        Runs on kafka-python's IO thread, where only the non-blocking commit is allowed.
        """
        try:
            self.checkpoint(lambda offsets: self._consumer.commit_async(offsets))
        except KafkaUnavailable as exc:
            log.error("checkpoint before the rebalance failed; the batch will be replayed: %s", exc)

    def keep_only(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: forget the sensors whose partitions went to another monitor."""
        self.assigned = set(assigned)
        self.forget(s for s, tp in self._partition_of.items() if tp not in assigned)

    def drop(self, lost: set[TopicPartition]) -> None:
        """Evicted: discard state and uncommitted offsets of ``lost``."""
        self.assigned -= lost
        for tp in lost:
            self._offsets.pop(tp, None)
        self.forget(s for s, tp in self._partition_of.items() if tp in lost)

    def forget(self, sensors: Iterable[str]) -> None:
        """Drop the state of ``sensors``; they start cleanly if their readings come back."""
        sensors = list(sensors)
        if not sensors:
            return
        self.pipeline.forget(sensors)
        for sensor in sensors:
            self._partition_of.pop(sensor, None)
            self._open_alerts.pop(sensor, None)
        self.metrics.open_alerts.set(sum(map(len, self._open_alerts.values())))
        log.info("forgot %d sensor(s) now owned by another monitor", len(sensors))

    def _tick(self) -> None:
        """Refresh the lag gauge and log the summary when they are due."""
        now = time.monotonic()
        if now >= self._next_lag:
            self._next_lag = now + LAG_REFRESH_S
            lag = consumer_lag(self._consumer)
            if lag is not None:
                self.metrics.lag.set(lag)
        if now >= self._next_summary:
            if self._next_summary:
                log.info("monitor: %s", self.metrics.summary())
            self._next_summary = now + self.settings.summary_interval_s

    def _connect(self) -> None:
        settings = self.settings
        self._consumer, self._producer = open_clients(
            settings, from_beginning=self._from_beginning, listener=PartitionHandover(self)
        )
        try:
            self.metrics.serve(settings.metrics_port)
        except BaseException:
            self._close()
            raise
        log.info(
            "monitoring %s as group %r → %s, %s (dead letters: %s)",
            settings.readings_topic,
            settings.group_id,
            settings.scores_topic,
            settings.alerts_topic,
            settings.dead_letter_topic,
        )

    def _close(self) -> None:
        """Leave the group (its revoke hook checkpoints), then close the producer."""
        try:
            if self._consumer is not None:
                self._consumer.close(autocommit=False)
            if self._producer is not None:
                self._producer.close()
        except kerr.KafkaError as exc:  # everything that matters was committed before
            log.warning("closing the Kafka clients: %s", exc)
        finally:
            self._consumer = self._producer = None
            self.metrics.close()
        totals = self.metrics.totals()
        log.info(
            "monitor stopped: %d readings consumed, %d windows scored, %d alerts opened, "
            "%d closed, %d dead-lettered",
            *(totals[k] for k in ("readings", "windows", "opened", "closed", "dead_letters")),
        )
