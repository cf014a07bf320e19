"""The live monitor: readings from Kafka through the detection core, results back to Kafka.

Kafka is an adapter around ``Pipeline``. Each batch is::

    poll → sort records → pipeline.process → send scores, alerts, dead letters

except after partitions were assigned: then the batch goes back (the next poll
returns it) and the state of the new partitions is restored first, the group
polled meanwhile with every partition paused (a long restore stays in the group).

Every ``checkpoint_interval_ms`` (exactly-once: every batch) a checkpoint
makes the batches since the last one durable: results, then the state of every
sensor they changed (compacted state topic, one record per sensor however many
batches changed it), then the consumed offsets —
acknowledged step by step (at-least-once) or in one transaction (exactly-once),
see ``delivery.py``. At-least-once, the periodic checkpoint is staged: the
state is taken when it starts and each step follows once the previous one is
acknowledged, while the loop goes on scoring; a rebalance or the end of the run
finishes it within a checkpoint that waits. Any failure before the offsets are
committed rewinds: the sensors' state is reloaded from the state topic and the
partitions are read again from the committed offsets, so a crash, a restart
or a rebalance loses nothing and (exactly-once) repeats nothing. Restored
sensors need no warm-up. Records that are not usable readings go to the
dead-letter topic with the reason (``intake.py``); the monitor never stops on
bad input.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from kafka import TopicPartition
from kafka import errors as kerr
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from streamae.config import Settings
from streamae.detectors.base import Detector
from streamae.exceptions import KafkaAuthError, KafkaUnavailable
from streamae.kafka.clients import kafka_errors
from streamae.messages import Alert, encode
from streamae.monitor.connect import (
    CLOSE_TIMEOUT_S,
    MAX_POLL_INTERVAL_MS,
    TRANSACTION_TIMEOUT_MS,
    Clients,
    consumer_lag,
    make_monitor_producer,
    open_clients,
)
from streamae.monitor.delivery import (
    AtLeastOnce,
    Message,
    Offsets,
    Staged,
    TakenOver,
    fenced,
    make_delivery,
    twin_in_group,
)
from streamae.monitor.intake import Decoded, Record, sort_records
from streamae.monitor.metrics import MonitorMetrics
from streamae.monitor.outage import BACKOFF_S, GaveUp, Patience, tcp_reachable
from streamae.monitor.outputs import dead_letter, finite_alert, finite_score
from streamae.monitor.rebalance import PartitionHandover
from streamae.monitor.sensors import SensorBook, Tracked
from streamae.monitor.state import StateReader
from streamae.pipeline import DetectorRegistry, Output, Pipeline

log = logging.getLogger(__name__)

LAG_REFRESH_S = 5.0
#: How often idle sensors are looked for (wall clock; idleness is in reading time).
SWEEP_EVERY_S = 10.0
#: Records waiting this long without any arriving makes the monitor look for a twin.
STALL_CHECK_S = 20.0
#: During a restore the group is polled (nothing read) once this long passed, checked
#: between two sensors, two reads of the state topic and every ``COLLECT_BETWEEN``
#: records decoded: far within the time a member may spend between polls, and a
#: rebalance other members start waits about this long for this one to rejoin.
KEEP_ALIVE_S = 2.0


def _position(item: tuple[Record, str]) -> tuple[int, int]:
    return item[0].partition, item[0].offset


@dataclass
class _Underway:
    """A staged checkpoint, and what the monitor reports once it is done."""

    staged: Staged
    scored_at: list[int]
    alerts: list[Alert]
    since: float  # time.monotonic() when it started


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
        self.settings = settings
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        self.pipeline = Pipeline(settings, detectors)
        self.metrics = MonitorMetrics()
        self.patience = Patience(settings)
        self._from_beginning = from_beginning
        self._on_alert = on_alert
        self.clients: Clients | None = None
        self._failed = False
        self._listener: PartitionHandover | None = None
        self.delivery: AtLeastOnce | None = None
        self._state: StateReader | None = None
        #: The readings partitions this monitor owns now.
        self.assigned: set[TopicPartition] = set()
        self.book = SensorBook(settings, self.pipeline, self.metrics)
        self._to_load: set[int] = set()  # partitions whose state is still to be restored
        self._polled_at = time.monotonic()  # the last poll of the readings consumer
        # A rebalance began (partitions revoked or lost) and no assignment came yet; and
        # how often each partition left this member (a restore of one that left stops).
        self._joining = False
        self._left: Counter[int] = Counter()
        self._stop = threading.Event()  # run's: a restore stops early too
        # Since the last checkpoint: next offset per partition, Kafka timestamps of
        # the readings scored, alerts (the changed sensors are in the book).
        self._offsets: dict[TopicPartition, int] = {}
        self._scored_at: list[int] = []
        self._alerts: list[Alert] = []
        # Where a rewind goes back to, per partition read: the offset of the last
        # checkpoint (handed to the commit), else of the first record polled.
        self._resume: dict[TopicPartition, int] = {}
        self._underway: _Underway | None = None
        # A checkpoint that failed inside poll (the rebalance hook): the next step rewinds.
        self._handover_error: KafkaUnavailable | None = None
        #: Next offset to read per readings partition, as far as this member got
        #: (replays do not lower it); what ``streamae bench`` counts as consumed.
        self.read_to: dict[int, int] = {}
        self._drops = {"late": 0, "duplicate": 0}
        self._next_lag = self._next_summary = self._next_checkpoint = 0.0
        # Exactly-once commits one transaction per batch: a transaction held open across
        # polls met kafka-python's send_offsets_to_transaction hanging after a broker
        # restart (tests/monitor/test_outage.py); short transactions also keep
        # read_committed subscribers close behind.
        self._staging = settings.delivery != "exactly-once"
        self._checkpoint_every_s = settings.checkpoint_interval_ms / 1000 if self._staging else 0.0
        self._stall = (0.0, time.monotonic())  # readings consumed, and since when
        self._next_sweep = time.monotonic() + SWEEP_EVERY_S

    # -- the loop ------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, max_runtime_s: float | None = None) -> None:
        """Consume until ``stop`` is set or ``max_runtime_s`` passes; checkpoint; close."""
        stop = self._stop = stop or threading.Event()
        deadline = math.inf if max_runtime_s is None else time.monotonic() + max_runtime_s
        self._connect()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    self.step()
                except KafkaUnavailable as exc:
                    self._recover(exc)
            # Readings held back for reordering are consumed already: score them now.
            if self.settings.reorder_tolerance_ms:
                self.book.touch_all()
            released = self.pipeline.flush()
            self.book.alerted(released.alerts)
            self._publish(released, Decoded())
            self.checkpoint()
        except BaseException:
            # Never commit, nor checkpoint on the way out (the revoke hook), what may
            # not have been published: the failed batch is replayed from the last checkpoint.
            self._failed = True
            self._offsets.clear()
            self.book.discard_changes()
            raise
        finally:
            self._close()

    def step(self) -> None:
        """One batch: poll → sort → process → publish (after an assignment: the batch put
        back, the new partitions' sensors restored, nothing processed); and, once
        ``checkpoint_interval_ms`` passed since the last one (exactly-once: always), a
        checkpoint. Raises the error of a checkpoint that failed inside this poll's
        rebalance hook (``handover``), for ``run`` to rewind."""
        consumer = self.clients.consumer
        with kafka_errors(self.settings, f"polling {self.settings.readings_topic}"):
            batch = consumer.poll(timeout_ms=self.settings.max_batch_wait_ms)
        self._polled_at = time.monotonic()
        if self._to_load and self._handover_error is None:
            # The restore may poll the group (_keep_alive), and a rebalance there
            # checkpoints: records taken but not yet processed would be committed.
            # So the batch goes back, and the next poll returns it.
            self._put_back(batch)
            batch = {}
            self._restore()
        read_to = self.read_to
        for tp, part in batch.items():
            self._resume.setdefault(tp, part[0].offset)
            self._offsets[tp] = end = part[-1].offset + 1
            read_to[tp.partition] = max(read_to.get(tp.partition, 0), end)
        if self._handover_error is not None:
            # The rewind seeks back every partition polled, newly assigned ones too.
            raise self._handover_error
        records = [record for part in batch.values() for record in part]
        if records:
            self._process(records)
            self.metrics.readings.inc(len(records))
            self.metrics.batch_size.observe(len(records))
        if self._underway is not None:
            self._advance()
        if time.monotonic() >= self._next_checkpoint:
            if not self._staging:
                self.checkpoint()
            elif self._underway is None:
                self._stage()
        self._tick()

    def _process(self, records: list[ConsumerRecord]) -> None:
        decoded = sort_records(records, self.book.sensors, self.book.room())
        output = self.pipeline.process(decoded.readings)
        self.book.processed(decoded, output)
        self._publish(output, decoded)

    @property
    def sensors(self) -> dict[str, Tracked]:
        """The sensors with state, and where their readings arrive."""
        return self.book.sensors

    # -- results ---------------------------------------------------------------
    def _publish(self, output: Output, decoded: Decoded) -> None:
        """Send dead letters (invalid or rejected records, in offset order), scores and alerts."""
        rejected = [(decoded.origins[index], reason) for index, reason in output.rejected]
        for record, error in sorted(decoded.invalid + rejected, key=_position):
            self._dead_letter(record, error)
        stamps = {
            (r.sensor_id, r.ts_ms): o.timestamp
            for r, o in zip(decoded.readings, decoded.origins, strict=True)
        }
        settings, send = self.settings, self.delivery.send
        self.delivery.send_all(
            settings.scores_topic,
            [(score.sensor_id.encode(), encode(finite_score(score))) for score in output.scores],
        )
        scored = [(score.sensor_id, score.ts) for score in output.scores]
        self._scored_at.extend([stamps[key] for key in scored if key in stamps])
        for alert in output.alerts:
            send(settings.alerts_topic, alert.sensor_id.encode(), encode(finite_alert(alert)))
            opened = alert.state == "open"
            (self.metrics.alerts_opened if opened else self.metrics.alerts_closed).inc()
        self._alerts.extend(output.alerts)
        self.metrics.windows.inc(len(output.scores))

    def _dead_letter(self, record: Record, error: str) -> None:
        self.delivery.send(self.settings.dead_letter_topic, record.key, dead_letter(record, error))
        self.metrics.dead_letters.inc()

    # -- checkpoints -----------------------------------------------------------
    def checkpoint(self, commit: Callable[[dict], None] | None = None) -> None:
        """Make everything processed so far durable, in this order:

        1. evict the sensors idle for longer than ``idle_sensor_timeout_s``;
        2. publish scores, alerts and dead letters (sent while processing);
        3. write the state of every sensor changed since the last checkpoint
           (a tombstone for each evicted one) to its readings' partition number;
        4. commit the consumed offsets (with ``commit``, by default synchronously).

        At-least-once, each step is acknowledged before the next (a staged
        checkpoint under way is finished first); exactly-once, 2-4 are one
        transaction. If anything fails, nothing more is committed and
        ``KafkaUnavailable`` is raised: ``run`` rewinds to the last checkpoint.
        """
        self._next_checkpoint = time.monotonic() + self._checkpoint_every_s
        self._sweep()
        offsets, scored_at, alerts = self._taken(), self._scored_at, self._alerts
        if self._underway is not None:
            # Its state goes out first; its offsets are covered by the newer ones.
            underway, self._underway = self._underway, None
            self.delivery.finish(underway.staged)
            offsets = {**underway.staged.offsets, **offsets}
            scored_at, alerts = underway.scored_at + scored_at, underway.alerts + alerts
        self.delivery.commit(self._write_state, offsets, commit or self._commit)
        self._offsets.clear()
        self._scored_at, self._alerts = [], []
        self._checkpointed(offsets, scored_at, alerts)

    def _stage(self) -> None:
        """Start a checkpoint that ``_advance`` carries on (see ``delivery.Staged``)."""
        self._next_checkpoint = time.monotonic() + self._checkpoint_every_s
        self._sweep()
        state: list[Message] = []
        self.book.write_state(lambda *message: state.append(message))
        staged = self.delivery.stage(state, self._taken())
        self._underway = _Underway(staged, self._scored_at, self._alerts, time.monotonic())
        self._offsets.clear()
        self._scored_at, self._alerts = [], []
        self._advance()

    def _advance(self) -> None:
        underway = self._underway
        waited = time.monotonic() - underway.since
        if waited > self.settings.broker_give_up_s:
            # A broker that takes connections but acknowledges nothing (e.g. too few
            # in-sync replicas) would otherwise be retried forever.
            raise GaveUp(
                f"Kafka at {self.settings.bootstrap_servers} acknowledged no checkpoint for "
                f"{waited:.0f} s; giving up after "
                f"{Settings.env_var('broker_give_up_s')}={self.settings.broker_give_up_s:g} s"
            )
        if self.delivery.advance(underway.staged, self._commit_async):
            self._underway = None
            if underway.staged.results or underway.staged.state:
                self.patience.reachable()  # the broker acknowledged them
            self._checkpointed(underway.staged.offsets, underway.scored_at, underway.alerts)

    def _taken(self) -> Offsets:
        """The offsets to commit for what was consumed since the last checkpoint."""
        return {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._offsets.items()}

    def _checkpointed(self, offsets: Offsets, scored_at: list[int], alerts: list[Alert]) -> None:
        """After a checkpoint: rewinds go back to it; its latencies and alerts are reported."""
        self._resume.update({tp: meta.offset for tp, meta in offsets.items()})
        now_ms = time.time() * 1000
        for stamp in scored_at:
            self.metrics.latency.observe(max(0.0, now_ms - stamp) / 1000)
        if self._on_alert is not None:
            for alert in alerts:
                self._on_alert(alert)

    def _write_state(self) -> None:
        self.book.write_state(self.delivery.send)

    def _commit_async(self, offsets: Offsets) -> None:
        with kafka_errors(self.settings, "committing offsets"):
            self.clients.consumer.commit_async(offsets, callback=_commit_failed)

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        consumer = self.clients.consumer
        try:
            with kafka_errors(self.settings, "committing offsets"):
                self.patience.retry(lambda: consumer.commit(offsets), "committing offsets")
        except KafkaUnavailable as exc:
            if not isinstance(
                exc.__cause__, kerr.CommitFailedError | kerr.RebalanceInProgressError
            ):
                raise
            # The group moved these partitions meanwhile: their new owner replays
            # the batch from the last commit (duplicates, never losses).
            log.warning("offsets not committed, the group is rebalancing: %s", exc.__cause__)

    # -- failures --------------------------------------------------------------
    def _recover(self, exc: KafkaUnavailable) -> None:
        """After a failed batch: abort it, reload state, re-read from the committed offsets."""
        if isinstance(exc, GaveUp | KafkaAuthError | TakenOver):
            raise exc
        self._check_fencing(exc)
        log.warning("batch not committed, replaying it from the last checkpoint: %s", exc)
        attempt = 0
        while True:
            try:
                self._abort()
                self._rewind()
                return
            except KafkaUnavailable as again:
                if isinstance(again, GaveUp | KafkaAuthError | TakenOver):
                    raise
                self._check_fencing(again)
                self.patience.unreachable("recovering from a failed batch", again)
                time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
                attempt += 1

    def _check_fencing(self, exc: BaseException) -> None:
        """Stop if another monitor runs under our identity (a twin).

        Our static group membership taken over is always a twin. Our transactional id
        taken over may also be the coordinator aborting a transaction that outlived
        the transaction timeout (a long outage): then a new producer carries on.
        """
        kind = fenced(exc)
        if kind == "instance":
            raise self._twin_error("group membership") from exc
        if kind == "producer":
            if self._twin():
                raise self._twin_error("transactional id") from exc
            log.warning("our transaction was fenced, no twin in the group: starting a new producer")

    def _twin(self) -> bool:
        with kafka_errors(self.settings, f"describing group {self.settings.group_id}"):
            return twin_in_group(self.settings, self.clients.consumer)

    def _twin_error(self, what: str) -> TakenOver:
        name = self.settings.instance_id or "this host's name"
        return TakenOver(
            f"another monitor in group {self.settings.group_id!r} runs as instance {name!r} "
            f"and took over this one's {what}; give each monitor its own "
            f"{Settings.env_var('instance_id')}"
        )

    def _abort(self) -> None:
        try:
            self.delivery.abort()
        except KafkaUnavailable as exc:
            if isinstance(exc, GaveUp):
                raise
            # The producer is in a state it cannot abort from (fenced, or timed out by
            # the coordinator): a new one with the same transactional id starts clean.
            log.warning("starting a new producer, the old one cannot abort: %s", exc)
            old = self.clients.producer
            with kafka_errors(self.settings, "starting a new producer"):
                self.clients.producer = self.patience.wait(
                    lambda: make_monitor_producer(self.settings), "starting a producer"
                )
            try:
                old.close(timeout=CLOSE_TIMEOUT_S)
            except kerr.KafkaError as close_exc:
                log.debug("closing the old producer: %s", close_exc)

    def _rewind(self) -> None:
        """Back to the last checkpoint: state from the state topic, records from there on."""
        self.metrics.rewinds.inc()
        self.book.clear()
        self._offsets.clear()
        self._scored_at.clear()
        self._alerts.clear()
        self._underway = None
        self._handover_error = None
        consumer = self.clients.consumer
        with kafka_errors(self.settings, "seeking back to the committed offsets"):
            for tp, offset in list(self._resume.items()):
                if tp in self.assigned:
                    consumer.seek(tp, offset)
                else:
                    del self._resume[tp]
        self._to_load = self._owned()
        self._restore()

    # -- partitions and sensors ------------------------------------------------
    def handover(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: checkpoint what was processed since the last checkpoint.

        Runs inside ``poll`` on kafka-python's IO thread, where only the non-blocking
        offset commit is allowed. At-least-once, the batches since the last finished
        checkpoint are pending (a staged one included); exactly-once checkpoints
        every batch, so no transaction is open here. If it fails, the next step
        rewinds to the last checkpoint (kafka-python keeps the positions of the
        partitions this member keeps, past what was not made durable).
        """
        self._joining = True
        if self._failed or not (self._offsets or self.delivery.pending or self._underway):
            return
        if self._handover_error is not None:
            # A second rebalance within the same poll: its checkpoint would commit
            # past the results the first one failed to publish.
            return
        try:
            self.checkpoint(lambda offsets: self.clients.consumer.commit_async(offsets))
        except KafkaUnavailable as exc:
            log.error(
                "checkpoint before the rebalance failed; replaying from the last one: %s", exc
            )
            self._handover_error = exc

    def reassigned(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: forget the sensors of partitions that left; restore new ones."""
        gone = {tp.partition for tp in self.assigned - assigned}
        added = {tp.partition for tp in assigned - self.assigned}
        self.assigned = set(assigned)
        self._joining = False
        self._left.update(gone)
        if moved := self.book.drop_partitions(gone):
            log.info("forgot %d sensor(s) now owned by another monitor", moved)
        self._to_load = (self._to_load - gone) | added
        # A rewind still goes back to the last checkpoint of the partitions kept;
        # new ones start from their committed offsets.
        for tp in set(self._resume) - self.assigned:
            del self._resume[tp]
        self._unstall()

    def drop(self, lost: set[TopicPartition]) -> None:
        """Evicted from the group: discard state and uncommitted offsets of ``lost``."""
        self.assigned -= lost
        parts = {tp.partition for tp in lost}
        self._joining = True
        self._left.update(parts)
        for tp in lost:
            self._offsets.pop(tp, None)
            self._resume.pop(tp, None)
        if self._underway is not None:
            self._underway.staged.drop_partitions(lost)
        self._to_load -= parts
        self.book.drop_partitions(parts)

    def _restore(self) -> None:
        """Restore the sensors stored in the state partitions still to load, one partition
        at a time. Long restores poll the group meanwhile (``_keep_alive``): a partition
        taken away there is left (given back, it is loaded again), one newly assigned
        is loaded too."""
        started, restored, loaded = time.monotonic(), 0, []
        while todo := self._to_load & self._owned():
            partition = min(todo)
            left = self._left[partition]

            def kept(partition: int = partition, left: int = left) -> bool:
                if self._stop.is_set():
                    return False
                self._keep_alive()
                return self._left[partition] == left

            stored = self._state.read({partition}, between=kept)
            count = self.book.restore(*stored, between=kept) if kept() else 0
            if self._stop.is_set():
                return  # the monitor stops: nothing more is processed
            if self._left[partition] == left:  # its sensors are all there
                restored += count
                self.metrics.restored.inc(count)
                loaded.append(partition)
                self._to_load.discard(partition)
        self._to_load.clear()  # what is left is no longer this monitor's
        if loaded:
            log.info(
                "restored %d sensor(s) from %s partition(s) %s in %.1f s",
                restored,
                self.settings.state_topic,
                ", ".join(map(str, sorted(loaded))),
                time.monotonic() - started,
            )
        self._unstall()  # a long restore is not a stall

    def _owned(self) -> set[int]:
        return {tp.partition for tp in self.assigned}

    def _keep_alive(self) -> None:
        """Poll the group, every partition paused, if ``KEEP_ALIVE_S`` passed since the last
        poll: the group does not drop a member that restores for long. A rebalance may
        run there (``handover``, ``reassigned``, ``drop``); once one began, poll on until
        its assignment came (or the group's time for it ran out): kafka-python sends no
        heartbeats while this member joins. Reads nothing; carries on a staged checkpoint."""
        if time.monotonic() - self._polled_at < KEEP_ALIVE_S:
            return
        consumer = self.clients.consumer
        deadline = time.monotonic() + MAX_POLL_INTERVAL_MS / 1000
        timeout_ms = 0
        with kafka_errors(self.settings, f"polling group {self.settings.group_id}"):
            while True:
                paused = consumer.assignment()
                consumer.pause(*paused)
                try:
                    batch = consumer.poll(timeout_ms=timeout_ms)
                finally:
                    consumer.resume(*(paused & consumer.assignment()))
                self._polled_at = time.monotonic()
                self._put_back(batch)  # of partitions assigned in that poll, so not paused
                if not self._joining or self._polled_at > deadline or self._stop.is_set():
                    break
                timeout_ms = self.settings.max_batch_wait_ms
        if self._handover_error is not None:
            raise self._handover_error
        if self._underway is not None:
            self._advance()

    def _put_back(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Seek back to the first record of each partition in ``batch``: not taken."""
        with kafka_errors(self.settings, f"seeking back in {self.settings.readings_topic}"):
            for tp, part in batch.items():
                self.clients.consumer.seek(tp, part[0].offset)

    def _sweep(self) -> None:
        """Evict idle sensors, every ``SWEEP_EVERY_S`` (see ``SensorBook.evict_idle``)."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY_S
            self.book.evict_idle()

    # -- housekeeping ------------------------------------------------------------
    def _tick(self) -> None:
        """Refresh the gauges, notice an outage while idle, log the summary when due."""
        now = time.monotonic()
        if now >= self._next_lag:
            self._next_lag = now + LAG_REFRESH_S
            for reason in self._drops:
                count = self.pipeline.counts[reason]
                self.metrics.dropped.labels(reason).inc(count - self._drops[reason])
                self._drops[reason] = count
            lag = consumer_lag(self.clients.consumer)
            if lag is not None:
                self.metrics.lag.set(lag)
                self.patience.reachable()
                self._check_stalled(lag, now)
            elif not tcp_reachable(self.settings.bootstrap_servers):
                self.patience.unreachable(f"polling {self.settings.readings_topic}")
        if now >= self._next_summary:
            if self._next_summary:
                log.info("monitor: %s", self.metrics.summary())
            self._next_summary = now + self.settings.summary_interval_s

    def _check_stalled(self, lag: int, now: float) -> None:
        """Records wait but none arrive: a twin may have taken our static group membership
        (kafka-python then stops fetching without saying so), else a rebalance under load
        left this member without its assignment (kafka-python then waits forever)."""
        consumed = self.metrics.totals()["readings"]
        if lag == 0 or consumed != self._stall[0]:
            self._stall = (consumed, now)
        elif now - self._stall[1] > STALL_CHECK_S:
            self._stall = (consumed, now)
            if self._twin():
                raise self._twin_error("group membership")
            self._rejoin(lag)

    def _unstall(self) -> None:
        self._stall = (self.metrics.totals()["readings"], time.monotonic())

    def _rejoin(self, lag: int) -> None:
        """Checkpoint, unsubscribe and subscribe again (a new join of the group); the new
        assignment restores its sensors from the state topic and reads on from the
        committed offsets."""
        log.warning(
            "no readings for %.0f s while %d wait in %s: rejoining group %r",
            STALL_CHECK_S,
            lag,
            self.settings.readings_topic,
            self.settings.group_id,
        )
        self.checkpoint()
        consumer = self.clients.consumer
        with kafka_errors(self.settings, f"rejoining group {self.settings.group_id}"):
            consumer.unsubscribe()
            self.drop(set(self.assigned))
            consumer.subscribe([self.settings.readings_topic], listener=self._listener)

    def _connect(self) -> None:
        settings = self.settings
        self._listener = PartitionHandover(self)
        self.clients = open_clients(
            settings, from_beginning=self._from_beginning, listener=self._listener
        )
        self.delivery = make_delivery(settings, self.clients, self.patience)
        # A previous owner's last transaction is resolved within the transaction
        # timeout (at once when this is the same instance restarting).
        settle_s = TRANSACTION_TIMEOUT_MS / 1000 + 10
        self._state = StateReader(settings, self.clients.state_consumer, settle_s=settle_s)
        try:
            self.metrics.serve(settings.metrics_port)
        except BaseException:
            self._close()
            raise
        # Everything allocated so far (model, libraries) lives as long as the monitor: out
        # of the collector's sight, a full collection no longer walks it (tens of ms).
        gc.collect()
        gc.freeze()
        log.info(
            "monitoring %s as group %r, %s → %s, %s (state: %s, dead letters: %s)",
            settings.readings_topic,
            settings.group_id,
            settings.delivery,
            settings.scores_topic,
            settings.alerts_topic,
            settings.state_topic,
            settings.dead_letter_topic,
        )

    def _close(self) -> None:
        """Close the clients (see ``Clients.close``) and the metrics endpoint."""
        try:
            if self.clients is not None:
                self.clients.close()
        finally:
            self.clients = None
            self.metrics.close()
        totals = self.metrics.totals()
        log.info(
            "monitor stopped: %d readings consumed, %d windows scored, %d alerts opened, "
            "%d closed, %d dead-lettered, %d sensors restored, %d evicted, %d batches replayed",
            *(
                totals[k]
                for k in (
                    "readings",
                    "windows",
                    "opened",
                    "closed",
                    "dead_letters",
                    "restored",
                    "evicted",
                    "rewinds",
                )
            ),
        )


def _commit_failed(offsets: Offsets, response: object) -> None:
    """An offset commit that failed is covered by the next checkpoint's (a crash in
    between replays more, and loses nothing)."""
    if isinstance(response, BaseException):
        log.warning("offsets not committed (the next checkpoint commits them): %s", response)
