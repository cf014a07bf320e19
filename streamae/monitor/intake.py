"""From consumed records to the readings the pipeline may take; the rest to dead letters.

Every record gets through or gets a reason; nothing a producer sends can stop
the monitor. In order:

1. it decodes as a reading (``decode_reading``: JSON, types, finite numbers,
   size and channel limits, a time between 1970 and 2100);
2. its key is its sensor_id — a sensor's readings and state must share one
   partition, or two monitors would both keep state for it;
3. its time is at most ``MAX_FUTURE_MS`` ahead of the record's Kafka timestamp
   (a clock or unit error would otherwise make every later reading "late");
4. its values are within ±``MAX_ABS_VALUE`` (larger numbers are encoding
   errors, and overflow a model's arithmetic into infinite scores);
5. its sensor is one the monitor keeps already, or there is room for one more
   under ``max_sensors`` — the bound on per-sensor memory.

Kafka-free, so the checks run in tests on made-up records.

>>> batch = sort_records([record], known={}, room=10)     # doctest: +SKIP
>>> batch.readings, batch.invalid                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from streamae.exceptions import InvalidReading
from streamae.messages import Reading, decode_reading

MAX_FUTURE_MS = 24 * 3600 * 1000
MAX_ABS_VALUE = 1e15


class Record(Protocol):
    """The parts of a consumed Kafka record the intake reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


@dataclass
class Decoded:
    """One batch of records, sorted: readings with their records, and the invalid ones."""

    readings: list[Reading] = field(default_factory=list)
    origins: list[Record] = field(default_factory=list)
    invalid: list[tuple[Record, str]] = field(default_factory=list)


def sort_records(records: Iterable[Record], known: Container[str], room: int) -> Decoded:
    """Readings the pipeline may take, and every other record with the reason.

    ``known`` are the sensors with state; ``room`` is how many new ones may be added.
    """
    decoded = Decoded()
    admitted: set[str] = set()
    for record in records:
        try:
            reading = check(record)
        except InvalidReading as exc:
            decoded.invalid.append((record, str(exc)))
            continue
        sensor = reading.sensor_id
        if sensor not in known and sensor not in admitted:
            if len(admitted) >= room:
                decoded.invalid.append((record, limit_reason(sensor)))
                continue
            admitted.add(sensor)
        decoded.readings.append(reading)
        decoded.origins.append(record)
    return decoded


def check(record: Record) -> Reading:
    """The record's reading, or ``InvalidReading`` saying why it is not a usable one."""
    try:
        reading = decode_reading(record.value)
    except InvalidReading:
        raise
    except Exception as exc:  # the decoder's contract is InvalidReading; never stop on input
        raise InvalidReading("$", f"undecodable ({type(exc).__name__}: {exc})") from None
    key = record.key
    if key is None or key != reading.sensor_id.encode():
        shown = "no key" if key is None else f"key {key[:80]!r}"
        raise InvalidReading(
            "sensor_id",
            f"record has {shown}; readings must be keyed by their sensor_id so that each "
            "sensor stays in one partition",
        )
    if record.timestamp > 0 and reading.ts_ms - record.timestamp > MAX_FUTURE_MS:
        ahead_h = (reading.ts_ms - record.timestamp) / 3_600_000
        raise InvalidReading(
            "ts",
            f"{ahead_h:.0f} h ahead of the record's Kafka timestamp (at most "
            f"{MAX_FUTURE_MS // 3_600_000} h allowed): check the sensor's clock and units",
        )
    for channel, value in reading.values.items():
        if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
            raise InvalidReading(
                f"values.{channel}", f"{value:g} is outside ±{MAX_ABS_VALUE:g}: an encoding error?"
            )
    return reading


def limit_reason(sensor: str) -> str:
    return (
        f"invalid reading: sensor_id: new sensor {sensor[:80]!r} refused: this monitor already "
        "keeps state for its max_sensors sensors (raise STREAMAE_MAX_SENSORS, lower "
        "STREAMAE_IDLE_SENSOR_TIMEOUT_S, or add partitions and monitors)"
    )
