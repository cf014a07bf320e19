"""The JSON messages on streamae's topics: readings in; scores, alerts and
dead-letter records out (see DESIGN.md "Messages").

Decoding is strict and typed (msgspec): an invalid reading raises exactly one
error type, ``InvalidReading``, naming the field and the reason.

>>> decode_reading(b'{"sensor_id": "pump-7", "ts": 1764151200000, "value": 1.5}')
Reading(sensor_id='pump-7', ts_ms=1764151200000, values={'value': 1.5}, label=None)
"""

from __future__ import annotations

import base64
import math
import re
from datetime import UTC, datetime
from typing import Literal

import msgspec

from streamae.exceptions import InvalidReading

MAX_MESSAGE_BYTES = 1_000_000
MAX_CHANNELS = 256
MAX_SENSOR_ID_CHARS = 256
SINGLE_CHANNEL = "value"
# Readings outside these bounds are almost certainly a unit or clock error
# (seconds sent as milliseconds, a zeroed clock) rather than real data.
MIN_TS_MS = 0
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


class Reading(msgspec.Struct, frozen=True):
    """One validated sensor reading; ``values`` maps channel name to value."""

    sensor_id: str
    ts_ms: int
    values: dict[str, float]
    label: int | None = None


class Score(msgspec.Struct, frozen=True):
    """The score of the window that ``values`` (the newest reading) completed."""

    sensor_id: str
    ts: int
    values: dict[str, float]
    score: float
    threshold: float
    is_anomaly: bool
    channel_errors: dict[str, float]
    model_version: str
    label: int | None = None


class Alert(msgspec.Struct, frozen=True):
    """One alert event: ``state`` is "open" when it opens, "closed" when it closes."""

    alert_id: str
    sensor_id: str
    state: Literal["open", "closed"]
    opened_at: int
    closed_at: int | None
    peak_score: float
    threshold: float
    top_channels: list[str]
    model_version: str


class DeadLetter(msgspec.Struct, frozen=True):
    """A record the monitor could not use, with where it came from and why."""

    error: str
    topic: str
    partition: int
    offset: int
    key: str | None
    raw: str  # base64 of the original value bytes

    @classmethod
    def of(
        cls, error: str, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes
    ) -> DeadLetter:
        return cls(
            error=error,
            topic=topic,
            partition=partition,
            offset=offset,
            key=None if key is None else key.decode("utf-8", "replace"),
            raw=base64.b64encode(raw or b"").decode("ascii"),
        )


class _WireReading(msgspec.Struct, forbid_unknown_fields=False):
    sensor_id: str
    ts: str | int
    values: dict[str, float] | None = None
    value: float | None = None
    label: int | None = None


_decoder = msgspec.json.Decoder(_WireReading)
_encoder = msgspec.json.Encoder()
_AT_PATH = re.compile(r" - at `([^`]*)`$")


def decode_reading(raw: bytes | str) -> Reading:
    """Decode and validate one reading message; raise ``InvalidReading`` if it is not one."""
    if raw is None:
        raise InvalidReading("$", "empty message (tombstone)")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidReading(
            "$", f"message is {len(raw)} bytes, over the {MAX_MESSAGE_BYTES} limit"
        )
    try:
        wire = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT_PATH.search(text)
        field = match.group(1).removeprefix("$.") if match else "$"
        reason = _AT_PATH.sub("", text)
        raise InvalidReading(field, reason) from None
    except msgspec.DecodeError as exc:
        raise InvalidReading("$", f"not valid UTF-8 JSON ({exc})") from None
    except RecursionError:  # msgspec's guard against deeply nested input
        raise InvalidReading("$", "JSON nested too deeply") from None
    return _validate(wire)


def _validate(wire: _WireReading) -> Reading:
    sensor_id = wire.sensor_id
    if not sensor_id or len(sensor_id) > MAX_SENSOR_ID_CHARS or not sensor_id.isprintable():
        raise InvalidReading("sensor_id", f"must be 1..{MAX_SENSOR_ID_CHARS} printable characters")
    if wire.values is not None and wire.value is not None:
        raise InvalidReading("values", "give either 'values' or 'value', not both")
    if wire.values is not None:
        values = wire.values
        if not values:
            raise InvalidReading("values", "must hold at least one channel")
        if len(values) > MAX_CHANNELS:
            raise InvalidReading("values", f"{len(values)} channels, over the {MAX_CHANNELS} limit")
    elif wire.value is not None:
        values = {SINGLE_CHANNEL: wire.value}
    else:
        raise InvalidReading("values", "missing: give 'values' (object) or 'value' (number)")
    for channel, number in values.items():
        if not math.isfinite(number):
            raise InvalidReading(f"values.{channel}", f"{number} is not a finite number")
    if wire.label not in (None, 0, 1):
        raise InvalidReading("label", f"must be 0 or 1, got {wire.label}")
    return Reading(sensor_id, parse_ts(wire.ts), values, wire.label)


def parse_ts(ts: str | int) -> int:
    """Epoch milliseconds from an ISO-8601 string or epoch milliseconds."""
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidReading(
                "ts", f"{ts[:40]!r} is not ISO-8601 or epoch milliseconds"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts_ms = round(parsed.timestamp() * 1000)
    else:
        ts_ms = ts
    if not MIN_TS_MS <= ts_ms < MAX_TS_MS:
        raise InvalidReading("ts", f"{ts_ms} ms is outside 1970..2100; is it in milliseconds?")
    return ts_ms


def format_ts(ts_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. ``2026-11-26T10:00:00.000Z``."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def encode_reading(reading: Reading) -> bytes:
    """The wire form of a reading (``value`` for the single-channel form)."""
    body: dict[str, object] = {"sensor_id": reading.sensor_id, "ts": reading.ts_ms}
    if list(reading.values) == [SINGLE_CHANNEL]:
        body["value"] = reading.values[SINGLE_CHANNEL]
    else:
        body["values"] = reading.values
    if reading.label is not None:
        body["label"] = reading.label
    return _encoder.encode(body)


def encode(message: Score | Alert | DeadLetter) -> bytes:
    """JSON bytes of an outgoing message."""
    return _encoder.encode(message)


def decode_score(raw: bytes) -> Score:
    return msgspec.json.decode(raw, type=Score)


def decode_alert(raw: bytes) -> Alert:
    return msgspec.json.decode(raw, type=Alert)


def decode_dead_letter(raw: bytes) -> DeadLetter:
    return msgspec.json.decode(raw, type=DeadLetter)
