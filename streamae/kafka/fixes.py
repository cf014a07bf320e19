"""A fix for a kafka-python 3.x group-membership race (``apply()``; ``clients`` applies it).

kafka-python's consumer coordinator decides to rejoin its group either from the
base flag (``rejoin_needed``: a heartbeat saw a rebalance, the member was fenced)
or from conditions of its own: the topics' partitions changed since the leader
assigned them, or the subscription changed since the last join. In the second
case the base flag stays False. When the ``poll()`` that starts such a join times
out while JoinGroup/SyncGroup are in flight (``coordinator.poll: timeout in
ensure_active_group``), the join finishes in the background and, by finishing,
makes the consumer's own conditions false. The next ``poll()`` then finds nothing
to rejoin and never takes the finished join's result: the member stays
"rebalancing" with its heartbeat disabled, the broker expires it after the
session timeout, and it keeps its old assignment (and keeps fetching) while
another member owns the same partitions. Seen with 3.0.12 in a two-monitor test
(the leader's first assignment was made before the topic's metadata arrived,
which triggers one such rejoin at once); a subscription change polled with
``timeout_ms=1`` reproduces it every time (tests/kafka/test_kafka_fixes.py).

The Java client turns such a condition into a rejoin request (it sets the base
flag, ``requestRejoinIfNecessary``) that only a completed join clears; this does
the same.
"""

from __future__ import annotations

from kafka.coordinator.consumer import ConsumerCoordinator


def apply() -> None:
    """Make every rejoin the coordinator decides on set the flag that only a finished join
    clears (idempotent)."""
    need_rejoin = getattr(ConsumerCoordinator, "need_rejoin", None)
    if need_rejoin is None or not hasattr(ConsumerCoordinator, "request_rejoin"):
        # Another kafka-python than the one this was written for: leave it as it is
        # (tests/kafka/test_kafka_fixes.py says whether it still needs a fix).
        return
    if getattr(need_rejoin, "_streamae_fix", False):
        return

    def need_rejoin_held(self: ConsumerCoordinator) -> bool:
        needed = need_rejoin(self)
        if needed:
            self.request_rejoin()
        return needed

    need_rejoin_held._streamae_fix = True  # type: ignore[attr-defined]
    need_rejoin_held.__doc__ = need_rejoin.__doc__
    ConsumerCoordinator.need_rejoin = need_rejoin_held  # type: ignore[method-assign]
