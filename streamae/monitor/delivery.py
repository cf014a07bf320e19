"""How a batch's results, sensor state and consumed offsets become durable together.

``Settings.delivery`` picks one:

- ``AtLeastOnce`` (the default): publish results → state → offsets, each step
  acknowledged before the next. A crash replays from the last committed
  offsets: results published again (alerts carry deterministic ids), never
  lost; readings that the saved state already holds are dropped as duplicates.
  The periodic checkpoint is ``Staged``: it walks the same steps without
  blocking the loop, one step whenever the previous one is acknowledged.
- ``ExactlyOnce``: one Kafka transaction per batch holds the results, the state
  and the offsets; read_committed consumers see every result exactly once.

>>> delivery = make_delivery(settings, clients, patience)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerr
from kafka.producer.future import FutureRecordMetadata
from kafka.structs import OffsetAndMetadata

from streamae.config import Settings
from streamae.exceptions import KafkaUnavailable
from streamae.kafka.clients import kafka_errors, make_admin
from streamae.monitor.connect import Clients
from streamae.monitor.outage import Patience

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, OffsetAndMetadata]
#: A message to send: topic, key, value (None: a tombstone), partition.
Message = tuple[str, bytes, bytes | None, int]


@dataclass
class Staged:
    """A checkpoint under way: its results are in flight; its state messages (taken
    when it started) go out once they are acknowledged, and its offsets are
    committed once the state is."""

    results: list[FutureRecordMetadata]
    state: list[Message]
    offsets: Offsets
    state_sent: list[FutureRecordMetadata] | None = None

    def drop_partitions(self, lost: set[TopicPartition]) -> None:
        """Leave out what belongs to readings partitions this monitor no longer owns."""
        parts = {tp.partition for tp in lost}
        self.offsets = {tp: o for tp, o in self.offsets.items() if tp not in lost}
        self.state = [message for message in self.state if message[3] not in parts]


class TakenOver(KafkaUnavailable):
    """Another monitor runs under this one's identity (a twin): this one stops."""


class AtLeastOnce:
    """Results, then state, then offsets; a crash in between replays, never loses."""

    def __init__(self, settings: Settings, clients: Clients, patience: Patience) -> None:
        self.settings = settings
        self.clients = clients
        self.patience = patience
        self._sends: list = []

    @property
    def producer(self) -> KafkaProducer:
        return self.clients.producer

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        with kafka_errors(self.settings, f"publishing to {topic}"):
            self._sends.append(self.producer.send(topic, value=value, key=key, partition=partition))

    def send_all(self, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """``send`` of every (key, value) in ``messages`` (one error translation for all)."""
        if not messages:
            return
        send, sends = self.producer.send, self._sends
        with kafka_errors(self.settings, f"publishing to {topic}"):
            sends.extend([send(topic, value=value, key=key) for key, value in messages])

    @property
    def pending(self) -> bool:
        return bool(self._sends)

    def commit(
        self,
        write_state: Callable[[], None],
        offsets: Offsets,
        commit_offsets: Callable[[Offsets], None],
    ) -> None:
        """1. flush the results; 2. write and flush the state; 3. ``commit_offsets``.

        State goes after the results so that a crash between the two replays
        the batch against the old state (duplicates), never the new state
        (which would drop the replayed readings whose results were lost).
        """
        self._acknowledged("publishing results")
        write_state()
        self._acknowledged("writing sensor state")
        if offsets:
            commit_offsets(offsets)

    def stage(self, state: list[Message], offsets: Offsets) -> Staged:
        """Start a checkpoint of everything sent so far, with ``state`` and ``offsets``
        taken now; ``advance`` carries it on."""
        staged = Staged(self._sends, state, offsets)
        self._sends = []
        return staged

    def advance(self, staged: Staged, commit_offsets: Callable[[Offsets], None]) -> bool:
        """Take the next step of ``staged`` if the previous one is acknowledged, without
        waiting; True once its offsets were handed to ``commit_offsets``."""
        if staged.state_sent is None:
            if not _all_done(staged.results):
                return False
            _raise_failed(staged.results, "publishing results")
            staged.state_sent = self._send_now(staged.state)
        if not _all_done(staged.state_sent):
            return False
        _raise_failed(staged.state_sent, "writing sensor state")
        if staged.offsets:
            commit_offsets(staged.offsets)
        return True

    def finish(self, staged: Staged) -> None:
        """Wait for ``staged``'s results, then send its state: the next ``commit`` makes
        it durable together with what was sent since (its offsets are the caller's)."""
        if staged.state_sent is None:
            if not _all_done(staged.results):
                self._flush("publishing results")
            _raise_failed(staged.results, "publishing results")
            staged.state_sent = self._send_now(staged.state)
        self._sends[:0] = staged.state_sent

    def abort(self) -> None:
        """Forget what was sent; the replay from the committed offsets sends it again."""
        self._sends.clear()

    def _send_now(self, messages: list[Message]) -> list[FutureRecordMetadata]:
        send = self.producer.send
        with kafka_errors(self.settings, "writing sensor state"):
            return [send(t, key=k, value=v, partition=p) for t, k, v, p in messages]

    def _flush(self, action: str) -> None:
        with kafka_errors(self.settings, action):
            self.patience.wait(self.producer.flush, action)

    def _acknowledged(self, action: str) -> None:
        if not self._sends:
            return
        self._flush(action)
        sends, self._sends = self._sends, []
        _raise_failed(sends, action)


def _all_done(futures: list[FutureRecordMetadata]) -> bool:
    # The newest are the likeliest to be in flight: look at them first.
    return all(future.is_done for future in reversed(futures))


def _raise_failed(futures: list[FutureRecordMetadata], action: str) -> None:
    failed = [future.exception for future in futures if future.failed()]
    if failed:
        raise KafkaUnavailable(
            f"{len(failed)} message(s) were not published while {action} ({failed[0]}); "
            "offsets were not committed, so the batch is replayed"
        )


class ExactlyOnce(AtLeastOnce):
    """One transaction per batch: results, state and offsets commit or abort together."""

    def __init__(self, settings: Settings, clients: Clients, patience: Patience) -> None:
        super().__init__(settings, clients, patience)
        self._open = False

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self._begin()
        super().send(topic, key, value, partition)

    def send_all(self, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
        if messages:
            self._begin()
            super().send_all(topic, messages)

    @property
    def pending(self) -> bool:
        return self._open

    def commit(
        self,
        write_state: Callable[[], None],
        offsets: Offsets,
        commit_offsets: Callable[[Offsets], None],
    ) -> None:
        """In one transaction: results (sent already), state, offsets; then commit it.

        ``commit_offsets`` is not used: the offsets are part of the transaction.
        """
        if not self._open and not offsets:
            return
        self._begin()
        write_state()
        producer, consumer = self.producer, self.clients.consumer
        with kafka_errors(self.settings, "committing the transaction"):
            if offsets:
                self.patience.wait(
                    lambda: producer.send_offsets_to_transaction(
                        offsets, consumer.group_metadata()
                    ),
                    "adding the offsets to the transaction",
                )
            self.patience.wait(producer.commit_transaction, "committing the transaction")
        self._open = False
        self._sends.clear()

    def abort(self) -> None:
        """Abort the open transaction: none of its messages, state or offsets count."""
        self._sends.clear()
        if not self._open:
            return
        self._open = False
        with kafka_errors(self.settings, "aborting the transaction"):
            self.patience.wait(self.producer.abort_transaction, "aborting the transaction")

    def _begin(self) -> None:
        if not self._open:
            with kafka_errors(self.settings, "beginning a transaction"):
                self.producer.begin_transaction()
            self._open = True


def make_delivery(settings: Settings, clients: Clients, patience: Patience) -> AtLeastOnce:
    kind = ExactlyOnce if settings.delivery == "exactly-once" else AtLeastOnce
    return kind(settings, clients, patience)


def fenced(exc: BaseException | None) -> str | None:
    """Whether ``exc`` (or a cause) says another monitor took over our identity:
    "producer" (our transactional id), "instance" (our static member id) or None."""
    # kafka-python also reports a fencing as a plain KafkaError carrying it in its args.
    seen: list[BaseException] = [exc] if exc is not None else []
    while seen:
        error = seen.pop()
        if isinstance(error, kerr.FencedInstanceIdError):
            return "instance"
        if isinstance(error, kerr.ProducerFencedError):
            return "producer"
        seen += [a for a in error.args if isinstance(a, BaseException)]
        seen += [e for e in (error.__cause__, error.__context__) if e is not None]
    return None


def twin_in_group(settings: Settings, consumer: KafkaConsumer) -> bool:
    """Whether another member of our group runs under our identity: the same static
    instance id, or (without one) the same host, whose name our transactional id carries."""
    me = consumer.group_metadata().member_id
    admin = make_admin(settings)
    try:
        with kafka_errors(settings, f"describing group {settings.group_id}"):
            members = admin.describe_groups([settings.group_id])[settings.group_id]["members"]
    finally:
        admin.close()
    mine = next((m for m in members if m["member_id"] == me), None)
    for member in members:
        if member["member_id"] == me:
            continue
        if settings.instance_id:
            if member.get("group_instance_id") == settings.instance_id:
                return True
        elif mine is not None and member.get("client_host") == mine.get("client_host"):
            return True
    return False
