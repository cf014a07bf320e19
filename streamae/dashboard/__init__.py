"""The live dashboard's data side: a Kafka feed, a bounded buffer and pure shaping.

Nothing here imports torch, and only ``app`` and ``charts`` import Streamlit
and Altair.
"""

from streamae.dashboard.buffer import (
    FeedState,
    FeedStatus,
    Latest,
    MonitorLag,
    Point,
    Snapshot,
    fold_alert,
)
from streamae.dashboard.feed import Feed, KafkaFeed, MemoryFeed

__all__ = [
    "Feed",
    "FeedState",
    "FeedStatus",
    "KafkaFeed",
    "Latest",
    "MemoryFeed",
    "MonitorLag",
    "Point",
    "Snapshot",
    "fold_alert",
]
