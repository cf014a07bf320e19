"""Send readings to the readings topic: recorded files (``replay``) or a simulated run.

A recording is one CSV/Parquet file or a folder of them, read with the column rules
of ``streamae.tables`` (first column timestamp, ``anomaly``/``label`` sent as the
reading's ``label``, ``changepoint`` ignored, numeric columns are channels). The
files of a folder play side by side: each file's clock starts when the replay
starts, so recordings made on different days still run concurrently, while the
messages keep their recorded timestamps. Within a file, rows go out in time order.

``ReadingSender`` (or ``produce``) paces any ``(due_ms, Reading)`` stream: ``speed``
times real time by ``due_ms``, or as fast as the producer goes; the simulator uses
it too.

>>> recording = load_recording("data/valve1/")                  # doctest: +SKIP
>>> produce(Settings.load(), recording.readings(), speed=10.0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamae.config import Settings
from streamae.exceptions import InputError, KafkaUnavailable
from streamae.kafka.clients import ensure_topics, kafka_errors, make_producer
from streamae.messages import Reading, encode_reading
from streamae.tables import SensorSeries, read_series, table_files

log = logging.getLogger(__name__)

# Pacing sleeps only when the next reading is due more than this far ahead, and
# sends everything due before then at once: steady rates without a sleep per message.
PACE_SLICE_S = 0.005
# Bounds on how long a send may block and a record may wait for the broker, so a
# broker that goes away ends the run with an error instead of a hang.
MAX_BLOCK_MS = 30_000
DELIVERY_TIMEOUT_MS = 60_000  # must exceed linger + the 30 s request timeout


@dataclass(frozen=True, eq=False)
class Recording:
    """The series of one file or folder, and when each file's clock starts."""

    series: list[SensorSeries]
    clock_starts: list[int]  # per series: the first timestamp of its file (ms)
    skipped_rows: int  # rows left out because a value was missing or not finite

    def __len__(self) -> int:
        return sum(len(s) for s in self.series)

    @property
    def sensors(self) -> list[str]:
        return [s.sensor_id for s in self.series]

    def readings(self) -> Iterator[tuple[int, Reading]]:
        """``(due_ms, reading)`` in replay order; ``due_ms`` counts from its file's first row."""
        due = np.concatenate(
            [s.ts_ms - start for s, start in zip(self.series, self.clock_starts, strict=True)]
        )
        which = np.repeat(np.arange(len(self.series)), [len(s) for s in self.series])
        row = np.concatenate([np.arange(len(s)) for s in self.series])
        order = np.lexsort((row, which, due))
        values = [s.values.tolist() for s in self.series]
        labels = [None if s.labels is None else s.labels.tolist() for s in self.series]
        timestamps = [s.ts_ms.tolist() for s in self.series]
        for due_ms, i, r in zip(
            due[order].tolist(), which[order].tolist(), row[order].tolist(), strict=True
        ):
            series = self.series[i]
            label = None if labels[i] is None else labels[i][r]
            values_i = dict(zip(series.channels, values[i][r], strict=True))
            yield due_ms, Reading(series.sensor_id, timestamps[i][r], values_i, label)


def load_recording(
    path: str | Path, columns: list[str] | None = None, sensor_id: str | None = None
) -> Recording:
    """Read every data file at ``path``; ``columns`` and ``sensor_id`` as in ``read_series``.

    Raises ``InputError`` when a file cannot be used, or when one sensor id comes
    from two files (their readings would interleave out of order).
    """
    series: list[SensorSeries] = []
    clock_starts: list[int] = []
    origin: dict[str, Path] = {}
    skipped = 0
    for file in table_files(path):
        in_file = read_series(file, columns=columns, sensor_id=sensor_id)
        start = min(int(s.ts_ms[0]) for s in in_file)
        for one in in_file:
            if one.sensor_id in origin:
                raise InputError(
                    f"sensor {one.sensor_id!r} comes from both {origin[one.sensor_id]} and "
                    f"{file}; replay them separately"
                    + (" (--sensor-id names a single sensor)" if sensor_id else "")
                )
            origin[one.sensor_id] = file
            finite = np.isfinite(one.values).all(axis=1)
            skipped += int((~finite).sum())
            if finite.any():
                series.append(_rows(one, finite))
                clock_starts.append(start)
    if skipped:
        log.warning("left out %d row(s) with a missing or non-finite value", skipped)
    if not series:
        raise InputError(f"{path}: no row has a value in every channel")
    return Recording(series, clock_starts, skipped)


class ReadingSender:
    """A producer for the readings topic, connected (and the topic created) on construction.

    >>> with ReadingSender(settings) as sender:                     # doctest: +SKIP
    ...     sender.send(recording.readings(), speed=10.0)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.readings_topic
        ensure_topics(settings, {self.topic: settings.readings_partitions})
        self._producer = make_producer(
            settings,
            linger_ms=20,
            max_block_ms=MAX_BLOCK_MS,
            delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
        )

    def send(
        self,
        readings: Iterable[tuple[int, Reading]],
        *,
        speed: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send ``(due_ms, reading)`` pairs (key = sensor id); return how many were sent.

        With ``speed``, a reading goes out ``(due_ms - first due_ms) / speed`` ms after
        the first; without, as fast as the producer takes them. Returns once the
        broker acknowledged every reading; raises ``KafkaUnavailable`` if one failed.
        """
        producer, topic = self._producer, self.topic
        failures: list[BaseException] = []
        sent = 0
        clock: tuple[float, int] | None = None
        with kafka_errors(self.settings, f"sending readings to topic {topic!r}"):
            for due_ms, reading in readings:
                if speed:
                    clock = clock or (time.monotonic(), due_ms)
                    wait = clock[0] + (due_ms - clock[1]) / (1000.0 * speed) - time.monotonic()
                    if wait > PACE_SLICE_S:
                        time.sleep(wait)
                future = producer.send(
                    topic, key=reading.sensor_id.encode(), value=encode_reading(reading)
                )
                future.add_errback(failures.append)
                sent += 1
                if progress:
                    progress(1)
                if failures:
                    break
            producer.flush()
        if failures:
            raise KafkaUnavailable(
                f"readings were not delivered to topic {topic!r} at "
                f"{self.settings.bootstrap_servers}: {failures[0]}; check that the broker is up"
            )
        return sent

    def close(self) -> None:
        self._producer.close(timeout=5)

    def __enter__(self) -> ReadingSender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def produce(
    settings: Settings,
    readings: Iterable[tuple[int, Reading]],
    *,
    speed: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Connect, send ``readings`` as ``ReadingSender.send`` does, close; return the count."""
    with ReadingSender(settings) as sender:
        return sender.send(readings, speed=speed, progress=progress)


def _rows(series: SensorSeries, keep: np.ndarray) -> SensorSeries:
    if keep.all():
        return series
    return SensorSeries(
        series.sensor_id,
        series.ts_ms[keep],
        series.values[keep],
        series.channels,
        None if series.labels is None else series.labels[keep],
        series.source,
    )
