"""Per-sensor state checkpoints on the compacted state topic.

One record per sensor: key = sensor_id, value = JSON of ``Pipeline.snapshot``
(window buffer, threshold statistics, alert tracker) plus the sensor's newest reading
time; a tombstone (value None) when the sensor is evicted. A sensor's state goes
to the partition NUMBER its readings come from, so the monitor that owns
readings partition p restores its sensors from state partition p alone.

The snapshot keeps every float exactly (float64, base64): a restored sensor then
gives bit for bit the scores and alerts of an uninterrupted run, which is what
exactly-once delivery promises. The record is bounded by the window (W x C
floats; the threshold is five numbers): about 2.5 kB with a 64 x 3 window. It is
written only for the sensors changed since the last checkpoint.

A sensor with a sensor memory (``Settings.sensor_memory``) also has its codes
there, in chunks of ``streamae.detectors.memory.CHUNK`` codes (about 6 kB at
latent 16): key = ``memory_key(sensor_id, k)``, which no sensor id can be (ids
are printable). A checkpoint writes the chunks codes were added to since the
last one before the sensor's record, and tombstones the chunks the memory no
longer holds after it; a chunk that is missing, short or of another memory
leaves the memory to start again (``SensorMemory.restore``), never wrong.

>>> record = encode_state(1764151200000, {"version": 1})
>>> decode_state(record)
StateRecord(newest_ts=1764151200000, pipeline={'version': 1})
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import msgspec
from kafka import KafkaConsumer, TopicPartition

from streamae.config import Settings
from streamae.exceptions import KafkaUnavailable
from streamae.kafka.clients import kafka_errors, position

log = logging.getLogger(__name__)

#: Format version of a state record (the pipeline snapshot inside has its own).
FORMAT = 1
POLL_MS = 200
#: Records ``collect`` decodes between two calls of its ``between`` (about 0.1 s of chunks).
COLLECT_BETWEEN = 1024
#: Between a sensor id and a chunk number in a memory chunk's key (never in a sensor id).
MEMORY_SEPARATOR = "\x00"


class StateRecord(msgspec.Struct, frozen=True):
    """What the state topic holds for one sensor: its record, and its memory's chunks."""

    newest_ts: int
    pipeline: dict
    memory: dict[int, dict] = msgspec.field(default_factory=dict)


class _Wire(msgspec.Struct):
    format: int
    newest_ts: int
    pipeline: dict


class _ChunkWire(msgspec.Struct):
    format: int
    chunk: dict


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Wire)
_chunk_decoder = msgspec.json.Decoder(_ChunkWire)


def encode_state(newest_ts: int, snapshot: dict) -> bytes:
    """The state record of a sensor whose newest reading is at ``newest_ts``."""
    return _encoder.encode({"format": FORMAT, "newest_ts": newest_ts, "pipeline": snapshot})


def memory_key(sensor_id: str, chunk: int) -> bytes:
    """The key of chunk ``chunk`` of a sensor's memory (see the module docstring)."""
    return f"{sensor_id}{MEMORY_SEPARATOR}{chunk}".encode()


def encode_chunk(chunk: dict) -> bytes:
    """The record of one chunk of a sensor memory's codes (``SensorMemory.changes``)."""
    return _encoder.encode({"format": FORMAT, "chunk": chunk})


def decode_chunk(raw: bytes) -> dict:
    """Decode a chunk record; ``ValueError`` if it is not one this version can use."""
    return _decode(_chunk_decoder, raw, "memory chunk record").chunk


def decode_state(raw: bytes) -> StateRecord:
    """Decode a state record; ``ValueError`` if it is not one this version can use."""
    wire = _decode(_decoder, raw, "state record")
    return StateRecord(wire.newest_ts, wire.pipeline)


def _decode(decoder: msgspec.json.Decoder, raw: bytes, what: str) -> Any:
    try:
        wire = decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ValueError(f"not a {what} ({exc})") from None
    if wire.format != FORMAT:
        raise ValueError(f"{what} format {wire.format}, this monitor reads {FORMAT}")
    return wire


class StateReader:
    """Reads state partitions to their end: the latest record of every sensor in them.

    In exactly-once mode it reads committed records only, and first waits (up to
    ``settle_s``) for transactions still open on those partitions — a previous
    owner's last checkpoint — to be committed or aborted, so the state it returns
    is the state the group's committed offsets belong to.
    """

    def __init__(self, settings: Settings, consumer: KafkaConsumer, *, settle_s: float) -> None:
        self.settings = settings
        self.consumer = consumer
        self.settle_s = settle_s
        self.exactly_once = settings.delivery == "exactly-once"

    def read(self, partitions: Iterable[int], between: Callable[[], bool] = lambda: True) -> Stored:
        """What the state ``partitions`` hold (``collect``). ``between`` is called after
        each poll and while the records are decoded; once it returns False the read
        stops and returns nothing."""
        topic = self.settings.state_topic
        tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
        if not tps:
            return Stored({}, {})
        latest: dict[bytes, tuple[int, bytes | None]] = {}
        consumer = self.consumer
        with kafka_errors(self.settings, f"reading the state topic {topic}"):
            consumer.assign(tps)
            try:
                consumer.seek_to_beginning(*tps)
                deadline = time.monotonic() + self.settle_s
                while True:
                    ends = consumer.end_offsets(tps)
                    while any(position(consumer, tp) < ends[tp] for tp in tps):
                        self._poll(latest)
                        if not between():
                            return Stored({}, {})
                    if self._settled(tps, latest, deadline):
                        break
                    if not between():
                        return Stored({}, {})
            finally:
                consumer.assign([])
        return collect(latest, between)

    def _poll(self, latest: dict[bytes, tuple[int, bytes | None]]) -> None:
        for tp, records in self.consumer.poll(timeout_ms=POLL_MS).items():
            for record in records:
                latest[record.key] = (tp.partition, record.value)

    def _settled(self, tps: list[TopicPartition], latest: dict, deadline: float) -> bool:
        """Whether no transaction is still open on ``tps`` (always, at-least-once)."""
        if not self.exactly_once:
            return True
        self._poll(latest)  # refreshes the high watermarks (and keeps any newer records)
        consumer = self.consumer
        open_tps = [tp for tp in tps if (consumer.highwater(tp) or 0) > position(consumer, tp)]
        if not open_tps:
            return True
        if time.monotonic() > deadline:
            raise KafkaUnavailable(
                f"state partitions {', '.join(str(tp.partition) for tp in open_tps)} of "
                f"{self.settings.state_topic} still have a transaction open after "
                f"{self.settle_s:.0f} s: is another monitor with the same instance id running?"
            )
        time.sleep(POLL_MS / 1000)
        return False


class Stored(NamedTuple):
    """What state partitions hold: ``{sensor_id: (partition, record)}``, and the keys of
    memory chunks no usable record goes with (to delete), by partition."""

    states: dict[str, tuple[int, StateRecord]]
    orphans: dict[bytes, int]


def collect(
    latest: dict[bytes | None, tuple[int, bytes | None]],
    between: Callable[[], bool] = lambda: True,
) -> Stored:
    """What the latest ``(partition, value)`` per key of state partitions hold: tombstones
    left out, unusable records too (with a warning), each sensor's memory chunks in its
    record. ``between`` is called every ``COLLECT_BETWEEN`` records (decoding thousands
    of sensors' memories takes seconds); once it returns False, nothing is returned."""
    states: dict[str, tuple[int, StateRecord]] = {}
    chunks: dict[tuple[str, int], dict[int, dict]] = {}  # (sensor, partition) → chunks
    orphans: dict[bytes, int] = {}
    for count, (key, (partition, value)) in enumerate(latest.items(), 1):
        if count % COLLECT_BETWEEN == 0 and not between():
            return Stored({}, {})
        if key is None or value is None:  # a tombstone: the sensor was evicted
            continue
        sensor = key.decode("utf-8", "replace")
        if MEMORY_SEPARATOR in sensor:
            sensor, _, number = sensor.rpartition(MEMORY_SEPARATOR)
            try:
                chunks.setdefault((sensor, partition), {})[int(number)] = decode_chunk(value)
            except ValueError as exc:
                log.warning("sensor %s: unusable memory chunk %s (%s)", sensor, number, exc)
                orphans[key] = partition
            continue
        try:
            states[sensor] = (partition, decode_state(value))
        except ValueError as exc:
            log.warning("sensor %s: unusable state record (%s); starting fresh", sensor, exc)
    for (sensor, partition), numbers in chunks.items():
        # A sensor's chunks live in its record's partition; any elsewhere are left over.
        if states.get(sensor, (None,))[0] == partition:
            record = states[sensor][1]
            states[sensor] = (partition, msgspec.structs.replace(record, memory=numbers))
        else:
            orphans.update(dict.fromkeys((memory_key(sensor, k) for k in numbers), partition))
    return Stored(states, orphans)
