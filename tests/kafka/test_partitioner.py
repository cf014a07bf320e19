"""``KeyedPartitioner``: exactly Kafka's default key → partition mapping, remembered."""

from __future__ import annotations

from kafka.partitioner.default import DefaultPartitioner

from streamae.kafka.clients import KeyedPartitioner


class Cluster:
    """The part of kafka-python's ClusterMetadata a partitioner reads."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def topics(self) -> set[str]:
        return {"scores"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))


def partition(partitioner, key: bytes | None, cluster: Cluster) -> int:
    return partitioner.partition("scores", key, key, b"v", b"v", cluster)


def test_same_partition_as_the_default_partitioner_on_first_and_repeated_sends() -> None:
    cached, default, cluster = KeyedPartitioner(), DefaultPartitioner(), Cluster(4)
    keys = [f"sensor-{i:04d}".encode() for i in range(500)]

    first = [partition(cached, key, cluster) for key in keys]
    again = [partition(cached, key, cluster) for key in keys]

    expected = [partition(default, key, cluster) for key in keys]
    assert first == again == expected
    assert set(expected) == {0, 1, 2, 3}


def test_a_new_partition_count_rehashes_every_key() -> None:
    cached, default, cluster = KeyedPartitioner(), DefaultPartitioner(), Cluster(4)
    keys = [f"pump-{i}".encode() for i in range(200)]
    for key in keys:
        partition(cached, key, cluster)

    cluster.partitions = 7

    assert [partition(cached, key, cluster) for key in keys] == [
        partition(default, key, cluster) for key in keys
    ]


def test_records_without_a_key_spread_over_the_partitions() -> None:
    cluster = Cluster(4)

    chosen = {partition(KeyedPartitioner(), None, cluster) for _ in range(200)}

    assert chosen <= {0, 1, 2, 3} and len(chosen) > 1
