import base64
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamae.exceptions import InvalidReading
from streamae.messages import (
    MAX_MESSAGE_BYTES,
    Alert,
    DeadLetter,
    Reading,
    Score,
    decode_alert,
    decode_dead_letter,
    decode_reading,
    decode_score,
    encode,
    encode_reading,
    format_ts,
    parse_ts,
)


def test_multi_channel_reading_with_iso_timestamp():
    raw = json.dumps(
        {
            "sensor_id": "pump-7",
            "ts": "2026-11-26T10:00:00.000Z",
            "values": {"pressure": 1.02, "temperature": 71.3},
            "label": 1,
        }
    )
    reading = decode_reading(raw.encode())
    assert reading == Reading("pump-7", 1795687200000, {"pressure": 1.02, "temperature": 71.3}, 1)


def test_single_channel_reading_with_epoch_ms():
    reading = decode_reading(b'{"sensor_id": "s1", "ts": 1764151200000, "value": 3}')
    assert reading.values == {"value": 3.0}
    assert reading.ts_ms == 1764151200000
    assert reading.label is None


def test_iso_without_zone_is_utc_and_round_trips():
    assert parse_ts("2026-11-26T10:00:00") == parse_ts("2026-11-26T10:00:00Z")
    assert format_ts(parse_ts("2026-11-26T10:00:00.250Z")) == "2026-11-26T10:00:00.250Z"


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b"not json", "$", "not valid UTF-8 JSON"),
        (b"\xff\xfe\x00", "$", "not valid UTF-8 JSON"),
        (b"[1, 2]", "$", "Expected `object`"),
        (b'{"ts": 1, "value": 1}', "$", "missing required field `sensor_id`"),
        (b'{"sensor_id": "a", "value": 1}', "$", "missing required field `ts`"),
        (b'{"sensor_id": 5, "ts": 1, "value": 1}', "sensor_id", "Expected `str`"),
        (b'{"sensor_id": "", "ts": 1, "value": 1}', "sensor_id", "printable"),
        (b'{"sensor_id": "a", "ts": 1}', "values", "missing"),
        (b'{"sensor_id": "a", "ts": 1, "value": "x"}', "value", "Expected `float"),
        (b'{"sensor_id": "a", "ts": 1, "values": {}}', "values", "at least one"),
        (b'{"sensor_id": "a", "ts": 1, "value": 1e999}', "value", "out of range"),
        (b'{"sensor_id": "a", "ts": 1, "value": NaN}', "$", "not valid"),
        (b'{"sensor_id": "a", "ts": 1, "value": 1, "values": {"x": 1}}', "values", "not both"),
        (b'{"sensor_id": "a", "ts": "yesterday", "value": 1}', "ts", "ISO-8601"),
        (b'{"sensor_id": "a", "ts": -5, "value": 1}', "ts", "outside"),
        (b'{"sensor_id": "a", "ts": 99999999999999999, "value": 1}', "ts", "outside"),
        (b'{"sensor_id": "a", "ts": 1, "value": 1, "label": 7}', "label", "0 or 1"),
    ],
)
def test_invalid_readings_name_field_and_reason(raw, field, reason):
    with pytest.raises(InvalidReading) as info:
        decode_reading(raw)
    assert info.value.field == field
    assert reason in info.value.reason


def test_oversized_message_is_refused_before_parsing():
    raw = b'{"sensor_id": "a", "ts": 1, "value": 1, "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    with pytest.raises(InvalidReading, match="over the"):
        decode_reading(raw)


def test_deeply_nested_json_is_refused():
    with pytest.raises(InvalidReading):
        decode_reading(b"[" * 10_000 + b"]" * 10_000)


# Generation speed depends on machine load, which says nothing about the decoder.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@relaxed
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(raw):
    try:
        reading = decode_reading(raw)
    except InvalidReading as exc:
        assert exc.field and exc.reason
    else:
        assert all(math.isfinite(v) for v in reading.values.values())


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@relaxed
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "sensor_id": json_values,
            "ts": json_values,
            "value": json_values,
            "values": json_values,
            "label": json_values,
        },
    )
)
def test_json_junk_raises_only_invalid_reading(body):
    try:
        reading = decode_reading(json.dumps(body).encode())
    except InvalidReading:
        return
    assert isinstance(reading.sensor_id, str) and reading.values


@relaxed
@given(
    st.text(min_size=1, max_size=20).filter(str.isprintable),
    st.integers(min_value=0, max_value=4_000_000_000_000),
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        min_size=1,
        max_size=5,
    ),
)
def test_encode_then_decode_reading_round_trips(sensor_id, ts_ms, values):
    reading = Reading(sensor_id, ts_ms, values, 0)
    assert decode_reading(encode_reading(reading)) == reading


def test_score_alert_and_dead_letter_round_trip():
    score = Score("s", 5, {"a": 1.0}, 0.5, 0.4, True, {"a": 0.5}, "abc", 1)
    alert = Alert("id1", "s", "open", 5, None, 0.5, 0.4, ["a"], "abc")
    dead = DeadLetter.of("bad json", "readings", 2, 17, b"s", b"\xff")
    assert decode_score(encode(score)) == score
    assert decode_alert(encode(alert)) == alert
    back = decode_dead_letter(encode(dead))
    assert back == dead
    assert base64.b64decode(back.raw) == b"\xff"
    assert json.loads(encode(dead))["partition"] == 2
