"""The monitor group's lag and commit rate: the arithmetic by hand, then against real Kafka."""

import time
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from streamae.config import Settings
from streamae.dashboard.buffer import MonitorLag
from streamae.dashboard.feed import KafkaFeed
from streamae.dashboard.lag import LagSampler, Sample, commit_rate, group_lag, group_positions
from streamae.kafka.clients import ensure_topics, make_consumer, make_producer

P0, P1, P2 = (TopicPartition("readings", p) for p in range(3))


def test_positions_are_committed_offsets_else_the_first_offset():
    first = {P0: 0, P1: 40, P2: 5}
    committed = {P0: 70, P1: 10}  # P1's commit points below the log start: those readings are gone
    assert group_positions(first, committed) == {P0: 70, P1: 40, P2: 5}


def test_lag_sums_end_minus_position_over_partitions():
    end = {P0: 100, P1: 40, P2: 9}
    assert group_lag(end, {P0: 70, P1: 40, P2: 5}) == 30 + 0 + 4
    # A position past the end (topic recreated under the group) is no negative lag.
    assert group_lag({P0: 10}, {P0: 25}) == 0


def test_commit_rate_is_progress_per_second_between_two_samples():
    before = Sample(10.0, {P0: 100, P1: 50})
    after = Sample(14.0, {P0: 130, P1: 60, P2: 999})  # P2 is new: no progress known yet
    assert commit_rate(before, after) == 10.0
    # A partition reset backwards counts as no progress, not as negative progress.
    assert commit_rate(before, Sample(12.0, {P0: 0, P1: 70})) == 10.0
    assert commit_rate(after, after) is None


class Clock:
    """A monotonic clock the test moves by hand, so the rate has exact numbers."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def produce(settings: Settings, counts: dict[int, int]) -> None:
    """``counts[p]`` readings into partition ``p`` of the readings topic."""
    producer = make_producer(settings)
    try:
        for partition, count in counts.items():
            for i in range(count):
                producer.send(settings.readings_topic, value=b'{"n": %d}' % i, partition=partition)
        producer.flush(30)
    finally:
        producer.close()


def commit(settings: Settings, offsets: dict[int, int]) -> None:
    """Commit ``offsets[p]`` on partition ``p`` for the monitor's group, as a monitor would."""
    consumer = make_consumer(settings, group_id=settings.group_id)
    try:
        tps = {TopicPartition(settings.readings_topic, p): o for p, o in offsets.items()}
        consumer.assign(list(tps))
        consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in tps.items()})
    finally:
        consumer.close(autocommit=False)


@pytest.fixture
def sampler_and_consumer(
    kafka_settings: Settings,
) -> Iterator[tuple[LagSampler, Clock, KafkaConsumer]]:
    clock = Clock()
    sampler = LagSampler(kafka_settings, clock=clock)
    consumer = make_consumer(kafka_settings)  # in no group, like the dashboard's reader
    yield sampler, clock, consumer
    sampler.reset()
    consumer.close(autocommit=False)


@pytest.mark.kafka
def test_lag_and_rate_of_a_group_on_a_real_readings_topic(kafka_settings, sampler_and_consumer):
    settings = kafka_settings
    sampler, clock, consumer = sampler_and_consumer
    ensure_topics(settings, {settings.readings_topic: 2})
    produce(settings, {0: 10, 1: 6})

    # Before the monitor ever commits: all 16 readings wait, and there is no group yet.
    assert sampler.sample(consumer) == MonitorLag(
        settings.group_id, settings.readings_topic, lag=16, readings_per_s=None, has_group=False
    )

    commit(settings, {0: 7})  # partition 1 never committed: counts from its first offset
    clock.now += 1.0
    first = sampler.sample(consumer)
    assert (first.lag, first.has_group, first.error) == ((10 - 7) + (6 - 0), True, None)

    commit(settings, {0: 10, 1: 4})
    clock.now += 2.0
    second = sampler.sample(consumer)
    assert second.lag == (10 - 10) + (6 - 4)
    assert second.readings_per_s == ((10 - 7) + (4 - 0)) / 2.0


@pytest.mark.kafka
def test_no_readings_topic_means_no_group_yet(kafka_settings, sampler_and_consumer):
    sampler, _, consumer = sampler_and_consumer
    monitor = sampler.sample(consumer)
    assert (monitor.lag, monitor.has_group, monitor.error) == (0, False, None)


@pytest.mark.kafka
def test_the_feed_shows_the_group_lag_in_its_snapshot(kafka_settings):
    settings = kafka_settings
    ensure_topics(settings, {settings.readings_topic: 1})
    produce(settings, {0: 12})
    commit(settings, {0: 5})
    feed = KafkaFeed(settings).start()
    try:
        deadline = time.monotonic() + 60
        while (monitor := feed.snapshot().monitor).lag is None or not monitor.has_group:
            assert time.monotonic() < deadline, f"no lag sample in time: {monitor}"
            time.sleep(0.2)
        assert (monitor.group_id, monitor.topic, monitor.lag) == (
            settings.group_id,
            settings.readings_topic,
            7,
        )
    finally:
        feed.stop()
    assert not feed.alive
