"""What the monitor publishes, made safe to publish: finite numbers, bounded dead letters.

JSON has no infinity: a model whose arithmetic overflows would publish ``null``
where subscribers expect a number, so non-finite numbers go out as ±the
largest float. A dead letter carries at most ``MAX_DEAD_LETTER_RAW`` bytes of
the record it rejects.

>>> finite(float("inf")) == sys.float_info.max
True
"""

from __future__ import annotations

import math
import sys

import msgspec

from streamae.messages import Alert, DeadLetter, Score, encode
from streamae.monitor.intake import Record

# A dead letter carries the raw record; capping it keeps a huge junk payload from
# making the dead letter itself too large to publish.
MAX_DEAD_LETTER_RAW = 64 * 1024
_MAX = sys.float_info.max


def finite(number: float) -> float:
    """``number``; ±inf as ±the largest float, NaN as the largest float."""
    if math.isfinite(number):
        return number
    return -_MAX if number < 0 else _MAX


def finite_score(score: Score) -> Score:
    """``score`` with every number finite (the same object when it was already)."""
    errors = score.channel_errors
    if math.isfinite(score.score + score.threshold + sum(errors.values())):
        return score
    return msgspec.structs.replace(
        score,
        score=finite(score.score),
        threshold=finite(score.threshold),
        channel_errors={channel: finite(e) for channel, e in errors.items()},
    )


def finite_alert(alert: Alert) -> Alert:
    """``alert`` with every number finite (the same object when it was already)."""
    if math.isfinite(alert.peak_score + alert.threshold):
        return alert
    return msgspec.structs.replace(
        alert, peak_score=finite(alert.peak_score), threshold=finite(alert.threshold)
    )


def dead_letter(record: Record, error: str) -> bytes:
    """The dead-letter message for ``record``, rejected because of ``error``."""
    raw = record.value or b""
    if len(raw) > MAX_DEAD_LETTER_RAW:
        error += f" (raw value cut to its first {MAX_DEAD_LETTER_RAW} of {len(raw)} bytes)"
        raw = raw[:MAX_DEAD_LETTER_RAW]
    letter = DeadLetter.of(error, record.topic, record.partition, record.offset, record.key, raw)
    return encode(letter)
