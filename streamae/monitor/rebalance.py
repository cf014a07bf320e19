"""Partition handover between the monitors of one consumer group.

kafka-python calls these hooks on its IO thread while the monitor's own thread
waits inside ``poll()`` (or ``close()``), so they may touch the monitor's state
but must not call blocking consumer methods; see ``Monitor.handover``. The state
of newly assigned partitions is read afterwards, on the monitor's thread, before
any of their records is processed (``Monitor.step``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kafka import ConsumerRebalanceListener, TopicPartition

if TYPE_CHECKING:
    from streamae.monitor.service import Monitor

log = logging.getLogger(__name__)


class PartitionHandover(ConsumerRebalanceListener):
    """Checkpoints before partitions leave; forgets the sensors of partitions that left,
    and marks the state of new ones to be restored."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # kafka-python revokes every partition before each rebalance (eager
        # protocol), and most come straight back: checkpoint now, forget later,
        # in on_partitions_assigned, only the sensors whose partition is gone.
        log.info("partitions revoked: %s", _names(revoked))
        self.monitor.handover(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", _names(assigned))
        self.monitor.reassigned(assigned)

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        # Evicted from the group: another monitor already owns these, and our
        # commit would be refused; drop their state and uncommitted offsets.
        log.warning("partitions lost (evicted from the group): %s", _names(lost))
        self.monitor.drop(lost)


def _names(partitions: set[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}-{tp.partition}" for tp in sorted(partitions)) or "(none)"
