"""Where the dashboard's data comes from: a ``Feed`` gives the page a ``Snapshot``.

``KafkaFeed`` runs one background thread per process that reads the scores and
alerts topics into a bounded ``FeedState``: it is assigned every partition of
both topics without a consumer group (so it commits nothing and never
disturbs the monitor's group), starts ``dashboard_lookback_s`` back in time,
picks up partitions and topics created later, and reconnects by itself, with
backoff, when the broker goes away. Every ``REFRESH_S`` the same thread also
samples the monitor group's lag and commit rate on the readings topic (see
``lag``). ``MemoryFeed`` is the same store filled by hand, for tests and
demos.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import msgspec
from kafka import KafkaConsumer, TopicPartition
from kafka import errors as kerr

from streamae.config import Settings
from streamae.dashboard.buffer import FeedState, MonitorLag, Snapshot
from streamae.dashboard.lag import LagSampler
from streamae.exceptions import KafkaUnavailable, StreamaeError
from streamae.kafka.clients import kafka_errors, make_consumer
from streamae.messages import Alert, Score, decode_alert, decode_score

log = logging.getLogger(__name__)

# Where a test or demo puts its own feed in ``st.session_state`` for the page to use.
FEED_KEY = "streamae_feed"
POLL_MS = 200
MAX_POLL_RECORDS = 5000
# How often to look for new partitions, check the broker still answers and sample the lag.
REFRESH_S = 5.0
PROBE_TIMEOUT_MS = 5000
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0


class Feed(Protocol):
    """What the page reads: a consistent copy, with one sensor's history if asked."""

    def snapshot(self, sensor_id: str | None = None) -> Snapshot: ...


class MemoryFeed(FeedState):
    """A feed filled by ``add_score`` / ``add_alert`` / ``set_monitor`` calls (tests, demos)."""

    def __init__(self, source: str = "in-memory feed", capacity: int = 100_000) -> None:
        super().__init__(source, capacity)


class KafkaFeed:
    """Reads the scores and alerts topics in a daemon thread; see the module docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = (settings.scores_topic, settings.alerts_topic)
        self.state = FeedState(f"Kafka at {settings.bootstrap_servers}", settings.dashboard_buffer)
        self._positions: dict[
            TopicPartition, int
        ] = {}  # next offset to read, kept across reconnects
        self._stop = threading.Event()
        self._had_contact = False
        self._lag = LagSampler(settings)
        self._lag_failing = False
        self._thread = threading.Thread(
            target=self._run, name="streamae-dashboard-feed", daemon=True
        )

    def start(self) -> KafkaFeed:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self, sensor_id: str | None = None) -> Snapshot:
        return self.state.snapshot(sensor_id)

    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stop.is_set():
            self._had_contact = False
            consumer = None
            try:
                consumer = make_consumer(
                    self.settings,
                    group_id=None,
                    allow_auto_create_topics=False,
                    bootstrap_timeout_ms=PROBE_TIMEOUT_MS,
                    # New partitions show up in metadata within this time.
                    metadata_max_age_ms=int(REFRESH_S * 1000),
                    # An exactly-once monitor aborts a batch it will score again: only
                    # committed results are shown (the same as any read without transactions).
                    isolation_level="read_committed",
                )
                self._read(consumer)
            except KafkaUnavailable as exc:
                self._mark_unreachable(str(exc))
                log.warning("dashboard feed: %s; retrying in %.1f s", exc, backoff)
            except Exception as exc:
                # The page stays open all day: an unexpected error must not end the feed for
                # good, so it is logged, shown, and the reader starts over.
                self._mark_unreachable(f"unexpected error: {exc}")
                log.exception("dashboard feed: unexpected error; restarting the reader")
            finally:
                if consumer is not None:
                    _close_quietly(consumer)
            if self._had_contact:
                backoff = BACKOFF_MIN_S  # connected until just now: the first retry is prompt
            self._stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
        self._lag.reset()

    def _mark_unreachable(self, error: str) -> None:
        self.state.mark_unreachable(error)
        # Old lag figures would look current; the next sample after reconnecting replaces these.
        self.state.set_monitor(self._monitor_error(error))

    def _monitor_error(self, error: str) -> MonitorLag:
        return MonitorLag(self.settings.group_id, self.settings.readings_topic, error=error)

    def _read(self, consumer: KafkaConsumer) -> None:
        """Poll until stopped; raise ``KafkaUnavailable`` when the broker stops answering."""
        next_refresh = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_refresh:
                with kafka_errors(self.settings, "reading the scores and alerts topics"):
                    self._refresh(consumer)
                self.state.mark_reachable()
                self._had_contact = True
                # Right after the broker answered, so a sample rarely waits on a dead one.
                self._sample_lag(consumer)
                next_refresh = time.monotonic() + REFRESH_S
            if not consumer.assignment():
                self._stop.wait(REFRESH_S)  # no topic exists yet: nothing to poll
                next_refresh = 0.0
                continue
            with kafka_errors(self.settings, "polling the scores and alerts topics"):
                batches = consumer.poll(timeout_ms=POLL_MS, max_records=MAX_POLL_RECORDS)
            self._ingest(batches)

    def _refresh(self, consumer: KafkaConsumer) -> None:
        """Check the broker answers, assign any new partitions and place them."""
        assigned = consumer.assignment()
        if assigned:
            # A cheap request with a deadline: poll() alone never says the broker is gone.
            consumer.end_offsets(list(assigned), timeout_ms=PROBE_TIMEOUT_MS)
        else:
            consumer.bootstrap(timeout_ms=PROBE_TIMEOUT_MS)
        wanted = {
            TopicPartition(topic, partition)
            for topic in self.topics
            for partition in consumer.partitions_for_topic(topic)
        }
        if wanted == assigned:
            return
        consumer.assign(sorted(wanted))
        for tp in wanted - assigned:
            if tp in self._positions:
                consumer.seek(tp, self._positions[tp])
        fresh = [tp for tp in wanted - assigned if tp not in self._positions]
        if fresh:
            self._seek_lookback(consumer, fresh)
        log.info("dashboard feed: reading %d partitions of %s", len(wanted), ", ".join(self.topics))

    def _sample_lag(self, consumer: KafkaConsumer) -> None:
        """Refresh the monitor group's lag figures; a failure shows as "—", never stops the feed."""
        try:
            monitor = self._lag.sample(consumer)
        except Exception as exc:
            # Logged once per outage: the page retries every few seconds all day long.
            if not self._lag_failing:
                log.warning(
                    "dashboard feed: cannot read the lag of group %r: %s",
                    self.settings.group_id,
                    exc,
                    exc_info=not isinstance(exc, StreamaeError),
                )
            self._lag_failing = True
            self.state.set_monitor(self._monitor_error(str(exc)))
            return
        if self._lag_failing:
            log.info("dashboard feed: reading the lag of group %r again", self.settings.group_id)
            self._lag_failing = False
        self.state.set_monitor(monitor)

    def _seek_lookback(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Start at the first record within the look-back, or at the end if none is that new.

        The end is looked up now rather than left to the next poll, which comes only
        after the lag sample: a record written in between would be skipped.
        """
        lookback_ms = int(self.settings.dashboard_lookback_s * 1000)
        since = max(0, int(time.time() * 1000) - lookback_ms)
        try:
            ends = consumer.end_offsets(partitions, timeout_ms=PROBE_TIMEOUT_MS)
            found = {}
            if lookback_ms > 0:
                found = consumer.offsets_for_times(
                    {tp: since for tp in partitions}, timeout_ms=PROBE_TIMEOUT_MS
                )
        except kerr.UnsupportedVersionError:
            consumer.seek_to_beginning(*partitions)
            return
        for tp in partitions:
            hit = found.get(tp)
            consumer.seek(tp, ends[tp] if hit is None else hit.offset)

    def _ingest(self, batches: dict[TopicPartition, list]) -> None:
        scores: list[tuple[Score, int | None]] = []
        alerts: list[Alert] = []
        for tp, records in batches.items():
            for record in records:
                try:
                    if tp.topic == self.settings.scores_topic:
                        scores.append((decode_score(record.value), _timestamp(record)))
                    else:
                        alerts.append(decode_alert(record.value))
                except (msgspec.DecodeError, TypeError) as exc:
                    # Another producer's junk must not stop the dashboard; the monitor owns the data.
                    log.warning("dashboard feed: skipping %s@%d: %s", tp, record.offset, exc)
            if records:
                self._positions[tp] = records[-1].offset + 1
        self.state.add_records(scores, alerts)


def _timestamp(record: object) -> int | None:
    ts = getattr(record, "timestamp", None)
    return ts if isinstance(ts, int) and ts >= 0 else None


def _close_quietly(consumer: KafkaConsumer) -> None:
    try:
        consumer.close(autocommit=False, timeout_ms=1000)
    except (kerr.KafkaError, OSError) as exc:
        log.debug("dashboard feed: closing the consumer: %s", exc)
