"""Hostile input: generated and hand-made junk never stops the monitor, every bad record
is dead-lettered with a reason, and per-sensor memory stays bounded."""

from __future__ import annotations

import collections
import contextlib
import json
import math
import random
import time
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamae.config import Settings
from streamae.detectors.zscore import ZScoreDetector
from streamae.exceptions import InvalidReading
from streamae.messages import (
    MAX_TS_MS,
    Reading,
    decode_alert,
    decode_dead_letter,
    decode_reading,
    decode_score,
    encode,
    encode_reading,
)
from streamae.monitor import service
from streamae.monitor.intake import MAX_ABS_VALUE, check, sort_records
from streamae.monitor.outputs import finite, finite_alert, finite_score
from streamae.monitor.state import StateRecord, decode_state, encode_state
from streamae.pipeline import Pipeline

from .conftest import monitor_thread

NOW_MS = 1_790_000_000_000  # a Kafka record timestamp for the made-up records
TRIED: collections.Counter[str] = collections.Counter()


@dataclass
class FakeRecord:
    """What the intake reads of a consumed record."""

    value: bytes | None
    key: bytes | None = b"s1"
    timestamp: int = NOW_MS
    topic: str = "readings"
    partition: int = 0
    offset: int = 0


def detector() -> ZScoreDetector:
    return ZScoreDetector(("value",), 4, [0.0], [1.0], np.linspace(0.5, 1.5, 50), tail=1)


# -- generated junk ---------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
anything = st.one_of(
    json_values,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=40),
    st.just("2026-11-27T10:00:00Z"),
    st.just("+999999-01-01"),
)
reading_shaped = st.fixed_dictionaries(
    {"sensor_id": st.one_of(st.just("s1"), st.text(max_size=300), anything), "ts": anything},
    optional={
        "value": anything,
        "values": st.one_of(st.dictionaries(st.text(max_size=5), anything, max_size=5), anything),
        "label": anything,
    },
)
raw_values = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    reading_shaped.map(lambda v: json.dumps(v, allow_nan=True).encode()),
)
keys = st.one_of(st.just(b"s1"), st.none(), st.binary(max_size=20))
timestamps = st.one_of(st.just(NOW_MS), st.integers(min_value=-1, max_value=2**63 - 1))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.one_of(st.none(), raw_values), key=keys, timestamp=timestamps)
def test_the_intake_accepts_a_valid_reading_or_says_why_not(value, key, timestamp):
    TRIED["intake"] += 1
    with contextlib.suppress(InvalidReading):  # nothing else may come out of the decoder
        decode_reading(value)
    record = FakeRecord(value, key, timestamp)
    try:
        reading = check(record)
    except InvalidReading as exc:
        assert exc.reason and str(exc).startswith("invalid reading: ")
        return
    # What gets through is a reading the pipeline can use safely.
    assert key == reading.sensor_id.encode()
    assert 0 <= reading.ts_ms < MAX_TS_MS
    assert all(math.isfinite(v) and abs(v) <= MAX_ABS_VALUE for v in reading.values.values())


@settings(max_examples=300, deadline=None)
@given(
    batch=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f"]), st.booleans()), max_size=40
    ),
    known=st.sets(st.sampled_from(["a", "b", "c"])),
    room=st.integers(min_value=0, max_value=4),
)
def test_new_sensors_beyond_the_room_are_refused_with_a_reason(batch, known, room):
    TRIED["batches"] += 1
    records = [
        FakeRecord(
            b'{"sensor_id": "%s", "ts": 1000, "value": 1.0}' % s.encode() if ok else b"\x00junk",
            s.encode(),
        )
        for s, ok in batch
    ]
    decoded = sort_records(records, known, room)
    assert len(decoded.readings) + len(decoded.invalid) == len(records)
    assert len({r.sensor_id for r in decoded.readings} - known) <= room
    assert all(reason for _, reason in decoded.invalid)
    refused = [reason for _, reason in decoded.invalid if "max_sensors" in reason]
    assert len(refused) == sum(
        1 for s, ok in batch if ok and s not in {r.sensor_id for r in decoded.readings}
    )


extreme = st.one_of(
    st.floats(min_value=-MAX_ABS_VALUE, max_value=MAX_ABS_VALUE),
    st.sampled_from([MAX_ABS_VALUE, -MAX_ABS_VALUE, 5e-324, 0.0, 1e7]),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=MAX_TS_MS - 1), extreme), max_size=60
    ),
    cut=st.integers(min_value=1, max_value=20),
)
def test_extreme_readings_publish_and_checkpoint_exactly(steps, cut):
    """Out-of-order times, duplicates, values at the limits: results encode as JSON numbers
    subscribers can decode, and a sensor restored from its state record after every batch
    gives exactly the results of one that never stopped."""
    TRIED["pipeline"] += 1
    settings = Settings(window_size=4, alert_open_after=1, threshold_window=20)
    readings = [Reading("s1", ts, {"value": v}) for ts, v in steps]
    uninterrupted = Pipeline(settings, detector()).process(readings)
    scores, alerts = [], []
    state = None
    for start in range(0, len(readings), cut):
        pipeline = Pipeline(settings, detector())
        if state is not None:
            record = decode_state(encode_state(state.newest_ts, state.pipeline))
            pipeline.restore("s1", record.pipeline)
        out = pipeline.process(readings[start : start + cut])
        scores += [decode_score(encode(finite_score(s))) for s in out.scores]
        alerts += [decode_alert(encode(finite_alert(a))) for a in out.alerts]
        if pipeline.sensors():
            state = StateRecord(0, json.loads(json.dumps(pipeline.snapshot("s1"))))
    assert [(s.ts, s.score, s.threshold, s.is_anomaly) for s in scores] == [
        (s.ts, finite(s.score), finite(s.threshold), s.is_anomaly) for s in uninterrupted.scores
    ]
    assert [(a.alert_id, a.state) for a in alerts] == [
        (a.alert_id, a.state) for a in uninterrupted.alerts
    ]


# -- hand-made junk through the real monitor ------------------------------------------


def good(ts: int) -> bytes:
    return b'{"sensor_id": "s1", "ts": %d, "value": 0.1}' % ts


def junk_records() -> list[tuple[bytes | None, bytes | None, str]]:
    """``(key, value, fragment of the reason)``: hand-made, then seeded random junk."""
    deep = 100_000
    hand = [
        (b"s1", b"\xff\xfe\xfa not utf-8", "not valid UTF-8 JSON"),
        (b"s1", b"", "not valid UTF-8 JSON"),
        (b"s1", b"[1, 2]", "Expected `object`"),
        (
            b"s1",
            b'{"sensor_id": "s1", "ts": 1, "value": 1, "x": ' + b"[" * deep + b"]" * deep + b"}",
            "nested too deeply",
        ),
        (
            b"s1",
            b'{"sensor_id": "s1", "ts": 1, "values": ' + b'{"a":' * 2000 + b"1" + b"}" * 2001,
            "values",
        ),
        (
            b"s1",
            b'{"sensor_id": "s1", "ts": 1, "value": 1, "pad": "' + b"x" * 10_000_000 + b'"}',
            "over the 1000000 limit",
        ),
        (b"s1", b'{"sensor_id": "s1", "ts": 1, "value": NaN}', "not valid UTF-8 JSON"),
        (b"s1", b'{"sensor_id": "s1", "ts": 1, "value": Infinity}', "not valid UTF-8 JSON"),
        (b"s1", b'{"sensor_id": "s1", "ts": 1, "value": 1e999}', "Number out of range"),
        (b"s1", b'{"sensor_id": "s1", "ts": 1, "value": 1e308}', "outside ±1e+15"),
        (b"s1", b'{"sensor_id": "s1", "ts": 1, "value": -2e15}', "outside ±1e+15"),
        (b"s1", b'{"sensor_id": "s1", "ts": -5, "value": 1}', "outside 1970..2100"),
        (
            b"s1",
            b'{"sensor_id": "s1", "ts": "0001-01-01T00:00:00", "value": 1}',
            "outside 1970..2100",
        ),
        (
            b"s1",
            b'{"sensor_id": "s1", "ts": 99999999999999999999, "value": 1}',
            "outside 1970..2100",
        ),
        (
            b"s1",
            b'{"sensor_id": "s1", "ts": "2099-12-31T00:00:00Z", "value": 1}',
            "ahead of the record's Kafka timestamp",
        ),
        (b"s1", b'{"sensor_id": "s1", "ts": 1e20, "value": 1}', "Expected `int | str`"),
        (b"s1", b'{"sensor_id": "", "ts": 1, "value": 1}', "printable characters"),
        (b"s1", b'{"sensor_id": "s\\u0000", "ts": 1, "value": 1}', "printable characters"),
        (
            b"x" * 300,
            b'{"sensor_id": "' + b"x" * 300 + b'", "ts": 1, "value": 1}',
            "printable characters",
        ),
        (b"s2", b'{"sensor_id": "s1", "ts": 1, "value": 1}', "keyed by their sensor_id"),
        (None, b'{"sensor_id": "s1", "ts": 1, "value": 1}', "record has no key"),
        (b"s1", None, "tombstone"),
        (b"s1", b'{"sensor_id": "s1", "ts": 1, "value": 1, "label": 5}', "must be 0 or 1"),
        (b"s1", b'{"sensor_id": "s1", "ts": 1, "value": 1, "values": {"value": 1}}', "not both"),
        (
            b"s1",
            json.dumps(
                {"sensor_id": "s1", "ts": 1, "values": {f"c{i}": 1 for i in range(300)}}
            ).encode(),
            "over the 256 limit",
        ),
        (b"s1", b'{"sensor_id": "s1", "ts": 1, "values": {"x": 1}}', "do not match the model"),
    ]
    rng = random.Random(7)
    generated = []
    for i in range(500):  # random bytes, and good readings cut short
        generated.append((b"s1", rng.randbytes(rng.randint(1, 200)), ""))
        body = good(5000 + i)
        generated.append((b"s1", body[: rng.randrange(len(body))], ""))
    return hand + generated


@pytest.mark.kafka
def test_junk_and_a_flood_of_sensors_never_stop_the_monitor(monitor_settings, kio, monkeypatch):
    settings = monitor_settings.replace(max_sensors=50)
    kio.create_topic(settings.readings_topic, 1, **{"max.message.bytes": str(16 * 2**20)})
    junk = junk_records()
    messages = [(b"s1", good(1000))]  # s1 is known before the flood
    expected_reason = {}
    for i, (key, value, reason) in enumerate(junk):
        expected_reason[len(messages)] = reason
        messages.append((key, value))
        messages.append((b"s1", good(1001 + i)))
    flood = 2000
    for i in range(flood):
        sensor = f"flood-{i:05d}-{'x' * 200}".encode()
        messages.append((sensor, b'{"sensor_id": "%s", "ts": 1000, "value": 1}' % sensor))
    kio.produce(settings.readings_topic, messages, max_request_size=16 * 2**20)
    started = time.monotonic()
    with monitor_thread(settings, detector()) as monitor:
        kio.wait_consumed(settings.group_id, settings.readings_topic, 120)
        kept = len(monitor.sensors)
        pipeline_kept = len(monitor.pipeline.sensors())
    letters = [decode_dead_letter(r.value) for r in kio.read(settings.dead_letter_topic)]
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic)]
    by_offset = {letter.offset: letter for letter in letters}
    junk_letters = [by_offset.get(offset) for offset in expected_reason]
    refused = [letter for letter in letters if "max_sensors" in letter.error]
    TRIED["kafka junk"] += len(junk)
    TRIED["kafka flood"] += flood
    print(
        f"\nhostile input: {len(junk)} junk records and {flood} new sensors through the "
        f"monitor in {time.monotonic() - started:.0f} s: {len(letters)} dead letters "
        f"({len(refused)} refused sensors), {len(scores)} scores for s1, {kept} sensors kept "
        f"(max_sensors 50); junk tried in all: {dict(TRIED)}"
    )
    for offset, reason in expected_reason.items():
        letter = by_offset.get(offset)
        assert letter is not None, f"record at offset {offset} was not dead-lettered"
        assert reason in letter.error, (reason, letter.error)
    assert all(letter.error for letter in junk_letters)
    assert kept == pipeline_kept == 50
    assert len(refused) == flood - 49
    assert len(letters) == len(junk) + len(refused)
    # Every good reading of s1 is still scored: the first window ends at its 4th.
    assert [s.ts for s in scores] == list(range(1003, 1001 + len(junk)))


@pytest.mark.kafka
def test_idle_sensors_are_evicted_and_their_state_deleted(monitor_settings, kio, monkeypatch):
    monkeypatch.setattr(service, "SWEEP_EVERY_S", 0.0)
    settings = monitor_settings.replace(idle_sensor_timeout_s=60, window_size=4)
    kio.create_topic(settings.readings_topic, 1)
    step = 1000  # one reading per second, in reading time
    busy = [Reading("busy", t * step, {"value": 0.1}) for t in range(200)]
    idle = [Reading("idle", t * step, {"value": 0.1}) for t in range(10)]
    kio.produce_readings(idle + busy, partitions=1)
    with monitor_thread(settings, detector()) as monitor:
        kio.wait_consumed(settings.group_id, settings.readings_topic)
        evicted = monitor.metrics.totals()["evicted"]
        kept = set(monitor.sensors)
    latest = {r.key: r.value for r in kio.read(settings.state_topic)}
    print(f"\nidle eviction: kept {sorted(kept)}, evicted {evicted:.0f}")
    assert kept == {"busy"}
    assert evicted == 1
    assert latest[b"idle"] is None  # a tombstone: a restart does not bring it back
    assert decode_state(latest[b"busy"]).newest_ts == 199 * step
    with monitor_thread(settings, detector()) as restarted:
        deadline = time.monotonic() + 30
        while not restarted.sensors and time.monotonic() < deadline:
            time.sleep(0.2)
        assert set(restarted.sensors) == {"busy"}


def test_encode_reading_round_trips_through_the_intake():
    record = FakeRecord(encode_reading(Reading("s1", NOW_MS, {"value": 1.5})))
    assert check(record) == Reading("s1", NOW_MS, {"value": 1.5})
