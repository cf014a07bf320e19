"""The order a staged at-least-once checkpoint keeps: results → state → offsets.

The producer here is an in-memory stand-in that hands out futures the test
completes by hand; what happens on a real broker (kill -9, outages, rebalances)
is in test_faults.py, test_outage.py and test_state.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from streamae.config import Settings
from streamae.exceptions import KafkaUnavailable
from streamae.monitor.delivery import AtLeastOnce
from streamae.monitor.outage import Patience


class _Sent:
    """What kafka-python's send returns, completed by the test."""

    def __init__(self, topic: str, key: bytes | None) -> None:
        self.topic, self.key = topic, key
        self.is_done = False
        self.exception: BaseException | None = None

    def failed(self) -> bool:
        return self.exception is not None


class _Producer:
    def __init__(self) -> None:
        self.sent: list[_Sent] = []

    def send(self, topic, value=None, key=None, partition=None) -> _Sent:
        self.sent.append(_Sent(topic, key))
        return self.sent[-1]

    def flush(self, timeout=None) -> None:
        for sent in self.sent:
            sent.is_done = True

    def acknowledge(self, topic: str) -> None:
        for sent in self.sent:
            if sent.topic == topic:
                sent.is_done = True


TP = TopicPartition("readings", 0)
OFFSETS = {TP: OffsetAndMetadata(42, "", -1)}
STATE = [("state", b"s1", b"{}", 0), ("state", b"s2", None, 0)]


@pytest.fixture
def producer() -> _Producer:
    return _Producer()


@pytest.fixture
def delivery(producer: _Producer) -> AtLeastOnce:
    settings = Settings()
    return AtLeastOnce(settings, SimpleNamespace(producer=producer), Patience(settings))


def test_state_waits_for_the_results_and_the_offsets_for_the_state(delivery, producer):
    delivery.send_all("scores", [(b"s1", b"1"), (b"s2", b"2")])
    staged = delivery.stage(list(STATE), dict(OFFSETS))
    committed: list[dict] = []

    assert not delivery.advance(staged, committed.append)
    assert [s.topic for s in producer.sent] == ["scores", "scores"]

    producer.acknowledge("scores")
    assert not delivery.advance(staged, committed.append)
    assert [(s.topic, s.key) for s in producer.sent[2:]] == [("state", b"s1"), ("state", b"s2")]
    assert committed == []

    producer.acknowledge("state")
    assert delivery.advance(staged, committed.append)
    assert committed == [OFFSETS]


def test_what_is_sent_after_a_checkpoint_started_is_not_part_of_it(delivery, producer):
    delivery.send_all("scores", [(b"s1", b"1")])
    staged = delivery.stage([], dict(OFFSETS))
    delivery.send_all("scores", [(b"s1", b"2")])
    producer.sent[0].is_done = True
    committed: list[dict] = []

    assert delivery.advance(staged, committed.append)
    assert committed == [OFFSETS]
    assert delivery.pending  # the newer score waits for the next checkpoint


def test_a_failed_result_stops_the_checkpoint_before_its_state(delivery, producer):
    delivery.send_all("scores", [(b"s1", b"1")])
    staged = delivery.stage(list(STATE), dict(OFFSETS))
    producer.sent[0].is_done = True
    producer.sent[0].exception = TimeoutError("broker away")
    committed: list[dict] = []

    with pytest.raises(KafkaUnavailable, match="not published while publishing results"):
        delivery.advance(staged, committed.append)
    assert [s.topic for s in producer.sent] == ["scores"]
    assert committed == []


def test_finish_waits_for_the_results_then_hands_the_state_to_the_next_commit(delivery, producer):
    delivery.send_all("scores", [(b"s1", b"1")])
    staged = delivery.stage(list(STATE), dict(OFFSETS))

    delivery.finish(staged)
    assert [s.topic for s in producer.sent] == ["scores", "state", "state"]
    assert delivery.pending  # the state is acknowledged by the commit that follows

    order: list[str] = []
    delivery.commit(lambda: order.append("state"), OFFSETS, lambda offsets: order.append("offsets"))
    assert order == ["state", "offsets"]
    assert all(s.is_done for s in producer.sent)


def test_dropped_partitions_leave_the_staged_state_and_offsets(delivery):
    other = TopicPartition("readings", 1)
    staged = delivery.stage(
        [("state", b"s1", b"{}", 0), ("state", b"s9", b"{}", 1)],
        {TP: OFFSETS[TP], other: OffsetAndMetadata(7, "", -1)},
    )

    staged.drop_partitions({other})

    assert staged.state == [("state", b"s1", b"{}", 0)]
    assert staged.offsets == OFFSETS
