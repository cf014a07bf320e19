"""How far the monitor's consumer group is behind the readings topic, read from Kafka itself.

The page must not depend on the monitor's metrics port being reachable, so the
feed's reader asks the broker every few seconds (not on every page rerun): the
group's committed offsets (admin client) and the readings topic's first and end
offsets (the reader's own consumer). From those:

- lag = Σ (end − position) over the partitions, where a partition's position is
  the group's committed offset, or the partition's first offset when the group
  never committed there (all of it still waits; an upper bound for a monitor
  that starts at the latest reading);
- readings/s = how far the positions advanced between two samples, per second.

>>> tp = TopicPartition("readings", 0)
>>> group_lag({tp: 120}, group_positions({tp: 0}, {tp: 100}))
20
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka import errors as kerr

from streamae.config import Settings
from streamae.dashboard.buffer import MonitorLag
from streamae.kafka.clients import kafka_errors, make_admin

log = logging.getLogger(__name__)

LAG_TIMEOUT_MS = 5000


class Sample(NamedTuple):
    at_s: float  # monotonic clock
    positions: dict[TopicPartition, int]


def group_positions(
    first: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Where the group stands on each partition of ``first``: its committed offset, else the
    partition's first offset (a committed offset below it points at deleted readings)."""
    return {tp: max(committed.get(tp, start), start) for tp, start in first.items()}


def group_lag(end: Mapping[TopicPartition, int], positions: Mapping[TopicPartition, int]) -> int:
    """Readings between each partition's position and its end, summed over the partitions."""
    return sum(max(0, end[tp] - position) for tp, position in positions.items() if tp in end)


def commit_rate(before: Sample, after: Sample) -> float | None:
    """Readings per second the group committed between two samples (None if no time passed).

    Only partitions seen in both samples count, and a partition whose position
    went back (offsets reset) counts as zero, not as negative progress.
    """
    elapsed = after.at_s - before.at_s
    if elapsed <= 0:
        return None
    advanced = sum(
        max(0, position - before.positions[tp])
        for tp, position in after.positions.items()
        if tp in before.positions
    )
    return advanced / elapsed


class LagSampler:
    """Samples the monitor group's lag; keeps the previous sample for the rate.

    Owned by one thread. ``sample`` raises ``KafkaUnavailable`` when the broker
    does not answer; the caller decides how to show that.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._admin: KafkaAdminClient | None = None
        self._previous: Sample | None = None
        self._seen_group = False  # whether any sample found the group's offsets

    def sample(self, consumer: KafkaConsumer) -> MonitorLag:
        """Measure now, using ``consumer`` (any consumer, in no group) for the topic's offsets."""
        group, topic = self.settings.group_id, self.settings.readings_topic
        try:
            with kafka_errors(self.settings, f"reading the lag of group {group!r} on {topic!r}"):
                partitions = sorted(
                    TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)
                )
                if not partitions:  # no readings topic yet, so no group progress on it either
                    self._previous = None
                    return MonitorLag(group, topic, lag=0, has_group=False)
                end = consumer.end_offsets(partitions, timeout_ms=LAG_TIMEOUT_MS)
                first = consumer.beginning_offsets(partitions, timeout_ms=LAG_TIMEOUT_MS)
                committed = self._committed(partitions)
        except Exception:
            # A stale coordinator or a half-closed connection must not outlive the failure.
            self.reset()
            raise
        self._seen_group = self._seen_group or bool(committed)
        now = Sample(self._clock(), group_positions(first, committed))
        before, self._previous = self._previous, now
        rate = commit_rate(before, now) if before is not None and committed else None
        return MonitorLag(
            group,
            topic,
            lag=group_lag(end, now.positions),
            readings_per_s=rate,
            has_group=bool(committed),
        )

    def _committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets on ``partitions``; a partition never committed is absent."""
        if self._admin is None:
            self._admin = make_admin(
                self.settings,
                bootstrap_timeout_ms=LAG_TIMEOUT_MS,
                request_timeout_ms=LAG_TIMEOUT_MS,
            )
        group = self.settings.group_id
        try:
            found = self._admin.list_group_offsets({group: partitions}).get(group, {})
        except kerr.CoordinatorNotAvailableError:
            if self._seen_group:
                raise  # a coordinator moving or loading: a passing error, not a vanished group
            # Kafka creates its offsets topic when the first group needs it, so on a fresh
            # cluster this is simply what "no group has committed yet" looks like.
            return {}
        # The broker answers -1 for a partition (or a whole group) with no committed offset.
        return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}

    def reset(self) -> None:
        """Forget the previous sample and close the admin client (a fresh one comes next time)."""
        self._previous = None
        if self._admin is not None:
            try:
                self._admin.close()
            except (kerr.KafkaError, OSError) as exc:
                log.debug("dashboard feed: closing the admin client: %s", exc)
            self._admin = None
