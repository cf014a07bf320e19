"""kafka-python's own error records reach the user without its internal traceback."""

from __future__ import annotations

import logging
import sys

from streamae.cli import _without_kafka_traceback


def _record(name: str) -> logging.LogRecord:
    try:
        raise OSError("connection reset")
    except OSError:
        exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "socket error", (), exc_info)


def test_a_kafka_record_keeps_its_message_and_loses_its_traceback():
    record = _record("kafka.net.transport")
    assert _without_kafka_traceback(record)
    assert "Traceback" not in logging.Formatter().format(record)
    assert record.getMessage() == "socket error"


def test_our_own_records_keep_their_traceback():
    record = _record("streamae.monitor.service")
    assert _without_kafka_traceback(record)
    assert "Traceback" in logging.Formatter().format(record)
