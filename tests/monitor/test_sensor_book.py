"""What the monitor writes to the state topic for a sensor with a sensor memory, and what
a restart reads back; the topic here is a dict, compacted as Kafka compacts it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from streamae.config import Settings
from streamae.detectors.memory import CHUNK
from streamae.messages import Reading
from streamae.monitor import state
from streamae.monitor.intake import Decoded
from streamae.monitor.metrics import MonitorMetrics
from streamae.monitor.sensors import SensorBook
from streamae.monitor.state import collect, decode_chunk, encode_chunk, memory_key
from streamae.pipeline import Pipeline

SETTINGS = Settings(sensor_memory=64, sensor_memory_delay=20, idle_sensor_timeout_s=100)
PARTITIONS = {"a": 0, "b": 0, "c": 1}


@dataclass
class Origin:
    """The parts of a consumed record the book reads."""

    partition: int


@pytest.fixture(scope="module")
def model():
    from streamae.tables import SensorSeries
    from streamae.training import TrainConfig, train_detector

    rng = np.random.default_rng(4)
    ts = np.arange(400, dtype=np.int64) * 1000
    normal = SensorSeries("train", ts, rng.standard_normal((400, 1)), ("v",), None, None)
    config = TrainConfig(window=8, hidden=8, latent=4, epochs=2, max_windows=300, device="cpu")
    return train_detector([normal], config, progress=False)


def readings(sensors, start: int, stop: int) -> list[Reading]:
    rng = np.random.default_rng(start)
    return [
        Reading(s, 1000 * t, {"v": float(rng.standard_normal())})
        for t in range(start, stop)
        for s in sensors
    ]


class Monitor:
    """A pipeline and its book, fed batches and checkpointed into ``topic``."""

    def __init__(self, model, topic: dict) -> None:
        self.pipeline = Pipeline(SETTINGS, model)
        self.book = SensorBook(SETTINGS, self.pipeline, MonitorMetrics())
        self.topic = topic

    def feed(self, batch: list[Reading]) -> list:
        out = self.pipeline.process(batch)
        origins = [Origin(PARTITIONS[r.sensor_id]) for r in batch]
        self.book.processed(Decoded(batch, origins), out)
        return out.scores

    def checkpoint(self) -> list[tuple[bytes, bool]]:
        """Write the changed state; returns (key, is a tombstone) in the order sent."""
        sent = []

        def send(topic: str, key: bytes, value: bytes | None, partition: int) -> None:
            assert topic == SETTINGS.state_topic
            if value is not None:
                assert partition == PARTITIONS[_sensor(key)]
            sent.append((key, value is None))
            self.partitions[key, value is None] = partition
            self.topic[key] = (partition, value)

        self.partitions: dict[tuple[bytes, bool], int] = {}
        self.book.write_state(send)
        return sent

    def live(self, sensor: str) -> set[int]:
        """The numbers of the sensor's memory chunks the topic holds."""
        prefix = memory_key(sensor, 0)[:-1]
        return {
            int(key[len(prefix) :])
            for key, (_, value) in self.topic.items()
            if key.startswith(prefix) and value is not None
        }


def _sensor(key: bytes) -> str:
    return key.decode().partition("\x00")[0]


def test_chunks_go_before_the_record_their_tombstones_after_and_a_restart_resumes(model):
    topic: dict = {}
    monitor = Monitor(model, topic)
    tombstones = []
    for start in range(0, 600, 50):
        monitor.feed(readings("abc", start, start + 50))
        sent = monitor.checkpoint()
        tombstones += [key for key, tomb in sent if tomb]
        for sensor in "abc":
            mine = [(key, tomb) for key, tomb in sent if _sensor(key) == sensor]
            record = mine.index((sensor.encode(), False))
            assert all(not tomb for _, tomb in mine[:record])  # its new chunks
            assert all(tomb for _, tomb in mine[record + 1 :])  # the chunks it dropped
            assert monitor.live(sensor) == set(monitor.pipeline.memory_stored(sensor))
    # ~570 normal codes each, a ring of 64: the chunks before the ring's oldest code are
    # deleted, each once.
    for sensor in "abc":
        memory = monitor.pipeline.snapshot(sensor)["memory"]
        oldest = (memory["joined"] - 64) // CHUNK
        assert oldest >= 2 and monitor.live(sensor) == set(
            range(oldest, -(-memory["added"] // CHUNK))
        )
    assert sorted(tombstones) == sorted(
        memory_key(s, k) for s in "abc" for k in range(min(monitor.live(s)))
    )

    restarted = Monitor(model, dict(topic))
    assert restarted.book.restore(*collect(topic)) == 3
    after = readings("abc", 600, 700)
    assert restarted.feed(after) == monitor.feed(after)


def test_an_evicted_sensor_s_chunks_are_deleted_with_it(model):
    monitor = Monitor(model, {})
    monitor.feed(readings("ab", 0, 300))
    monitor.checkpoint()
    stored = monitor.live("b")
    assert len(stored) >= 2
    monitor.feed(readings("a", 300, 500))  # b idle for 200 s of partition 0's reading time
    assert monitor.book.evict_idle() == 1
    sent = monitor.checkpoint()
    deleted = {key for key, tomb in sent if tomb and _sensor(key) == "b"}
    assert deleted == {b"b"} | {memory_key("b", k) for k in stored}
    assert monitor.live("b") == set() and monitor.topic[b"b"][1] is None
    assert monitor.live("a")


def test_chunks_a_restored_sensor_cannot_use_are_deleted_at_the_next_checkpoint(model, caplog):
    topic: dict = {}
    monitor = Monitor(model, topic)
    monitor.feed(readings("a", 0, 300))
    monitor.checkpoint()
    stored = sorted(monitor.live("a"))
    last = memory_key("a", stored[-1])
    partition, raw = topic[last]
    chunk = decode_chunk(raw)
    topic[last] = (partition, encode_chunk({**chunk, "generation": "another"}))
    topic[memory_key("a", 0)] = (partition, raw)  # left over from an older memory

    restarted = Monitor(model, topic)
    assert restarted.book.restore(*collect(topic)) == 1
    assert f"sensor memory not restorable (chunk {stored[-1]} of its codes is missing)" in (
        caplog.text
    )
    restarted.feed(readings("a", 300, 340))
    sent = restarted.checkpoint()
    old = sorted({memory_key("a", k) for k in [0, *stored]})
    assert sorted(sent[: len(old)]) == [(key, True) for key in old]  # deleted first ...
    assert (memory_key("a", 0), False) in sent[len(old) :]  # ... as the new memory writes its 0
    assert restarted.live("a") == {0}
    new = decode_chunk(topic[memory_key("a", 0)][1])["generation"]
    assert new == restarted.pipeline.snapshot("a")["memory"]["generation"] != chunk["generation"]


def test_chunks_without_a_usable_record_are_deleted_at_the_next_checkpoint(model):
    topic: dict = {}
    monitor = Monitor(model, topic)
    monitor.feed(readings("ab", 0, 200))
    monitor.checkpoint()
    orphaned = {key for key, (_, v) in topic.items() if _sensor(key) == "b" and v and key != b"b"}
    assert orphaned
    topic[b"b"] = (0, b"not a state record")
    topic[memory_key("a", 99)] = (0, b"not a chunk either")
    left_over = memory_key("a", max(monitor.live("a")))
    topic[memory_key("a", 98)] = (1, topic[left_over][1])  # a's, but not in its partition

    restarted = Monitor(model, topic)
    assert restarted.book.restore(*collect(topic)) == 1
    sent = restarted.checkpoint()
    extra = {memory_key("a", 99), memory_key("a", 98)}
    assert {key for key, tomb in sent if tomb} == orphaned | extra
    assert restarted.partitions[memory_key("a", 98), True] == 1  # deleted where it is
    assert restarted.live("a") == monitor.live("a") and restarted.live("b") == set()


def test_a_sensor_whose_readings_move_partition_takes_its_whole_state_along(model):
    topic: dict = {}
    monitor = Monitor(model, topic)
    monitor.feed(readings("a", 0, 300))
    monitor.checkpoint()
    before = monitor.live("a")
    PARTITIONS["a"] = 1  # e.g. the readings topic got more partitions
    try:
        monitor.feed(readings("a", 300, 301))
        sent = monitor.checkpoint()
    finally:
        PARTITIONS["a"] = 0
    keys = {memory_key("a", k) for k in before} | {b"a"}
    assert {key for key, tomb in sent if tomb} == keys  # deleted from partition 0 ...
    assert all(monitor.partitions[key, True] == 0 for key in keys)
    written = {key for key, tomb in sent if not tomb}
    assert written == keys and all(monitor.partitions[key, False] == 1 for key in keys)  # ... on 1
    restarted = Monitor(model, topic)
    assert restarted.book.restore(*collect(topic)) == 1
    after = readings("a", 301, 340)
    assert restarted.feed(after) == monitor.feed(after)


def test_a_restore_asks_between_sensors_whether_to_go_on_and_stops_when_told(model):
    """The monitor polls its group between sensors of a long restore; a partition taken
    away there ends the restore of its sensors."""
    topic: dict = {}
    monitor = Monitor(model, topic)
    monitor.feed(readings("abc", 0, 100))
    monitor.checkpoint()
    asked = []

    def between() -> bool:
        asked.append(len(restarted.book.sensors))
        return len(asked) < 2

    restarted = Monitor(model, dict(topic))
    assert restarted.book.restore(*collect(topic), between=between) == 2
    assert asked == [1, 2] and len(restarted.book.sensors) == 2


def test_collecting_the_state_asks_between_records_whether_to_go_on(model, monkeypatch):
    """Decoding thousands of sensors' memories takes seconds: the monitor polls its group
    meanwhile too, and a partition taken away there ends the decoding."""
    topic: dict = {}
    monitor = Monitor(model, topic)
    monitor.feed(readings("abc", 0, 300))  # with their memories' chunks
    monitor.checkpoint()
    monkeypatch.setattr(state, "COLLECT_BETWEEN", 2)
    asked = []
    assert collect(topic, between=lambda: asked.append(True) or True) == collect(topic)
    assert len(topic) > 3 and len(asked) == len(topic) // 2
    assert collect(topic, between=lambda: False) == ({}, {})
