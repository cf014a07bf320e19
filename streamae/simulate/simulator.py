"""Many simulated sensors, their labelled anomaly events, and their readings in time order.

Sensor ``i`` of ``S`` emits reading ``t`` at ``start + (t * S + i) * 1000 / rate`` ms: every
sensor at ``rate / S`` readings/s, staggered so that all of them together give a
steady ``rate``. Each sensor draws its parameters, noise and events from seeds
derived from ``(seed, i)``, so its values do not depend on the number of sensors
(only its timestamps do), and a longer run holds the events of a shorter one (plus
those that did not fit before its end) over the same normal readings. The normal
readings do not depend on the anomaly rate either: ``anomaly_rate=0`` gives the
clean twin of a run.

>>> series, events = simulate(sensors=2, readings_per_sensor=1000, anomaly_rate=0.1, seed=1)
>>> [s.sensor_id for s in series], series[0].values.shape
(['sensor-000', 'sensor-001'], (1000, 3))
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from streamae.exceptions import ConfigError
from streamae.messages import MAX_CHANNELS, MAX_TS_MS, Reading
from streamae.simulate.anomalies import ANOMALY_KINDS, Injection, check_kinds, plan_events, render
from streamae.simulate.signals import SensorModel
from streamae.tables import SensorSeries

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, so files are reproducible
DEFAULT_MIN_GAP = 192  # three default windows of normal readings between two events
MAX_SENSOR_RATE = 1000.0  # readings/s per sensor: one per millisecond, the timestamp resolution
DECIMALS = 4  # what a real transducer reports; also keeps messages and files small
SOURCE = Path("<simulated>")

# Independent random streams of one sensor.
_PARAMS, _NOISE, _EVENTS, _EVENT_DETAIL = range(4)


@dataclass(frozen=True)
class AnomalyEvent:
    """One injected anomaly: readings ``start..stop-1`` of ``sensor_id``, all labelled 1.

    ``end_ts`` is the timestamp of the last labelled reading (inclusive).
    """

    sensor_id: str
    kind: str
    start_ts: int
    end_ts: int
    start: int
    stop: int
    channels: tuple[str, ...]


class SimulatedData(NamedTuple):
    """What ``simulate`` returns: one series per sensor, and the events injected into them."""

    series: list[SensorSeries]
    events: list[AnomalyEvent]

    def readings(self) -> list[Reading]:
        """Every reading, with its label, in time order (ties: sensor order)."""
        ts = np.concatenate([s.ts_ms for s in self.series])
        which = np.repeat(np.arange(len(self.series)), [len(s) for s in self.series])
        row = np.concatenate([np.arange(len(s)) for s in self.series])
        order = np.lexsort((which, ts))
        values = [s.values.tolist() for s in self.series]
        labels = [s.labels.tolist() for s in self.series]
        return [
            Reading(
                self.series[i].sensor_id,
                t,
                dict(zip(self.series[i].channels, values[i][r], strict=True)),
                labels[i][r],
            )
            for t, i, r in zip(
                ts[order].tolist(), which[order].tolist(), row[order].tolist(), strict=True
            )
        ]


class Simulator:
    """Readings of ``sensors`` sensors, ``length`` readings each, generated slice by slice."""

    def __init__(
        self,
        sensors: int,
        length: int,
        *,
        rate: float = 100.0,
        channels: int = 3,
        anomaly_rate: float = 0.0,
        seed: int = 0,
        start_ms: int = DEFAULT_START_MS,
        kinds: Sequence[str] = ANOMALY_KINDS,
        min_gap: int = DEFAULT_MIN_GAP,
    ) -> None:
        _check(sensors, length, rate, channels, anomaly_rate, seed, min_gap)
        kinds = check_kinds(kinds)
        self.sensor_ids = tuple(f"sensor-{i:03d}" for i in range(sensors))
        self.length = length
        self.rate = float(rate)
        self.start_ms = int(start_ms)
        last_ms = self._ts(sensors - 1, np.array([length - 1]))[0]
        if self.start_ms < 0 or last_ms >= MAX_TS_MS:
            raise ConfigError(
                f"start {self.start_ms} ms: the run must lie within 1970..2100 "
                "(is it in milliseconds?)"
            )
        self.models = [
            SensorModel.random(
                np.random.default_rng([seed, i, _PARAMS]), channels, (seed, i, _NOISE)
            )
            for i in range(sensors)
        ]
        self.channels = self.models[0].channels
        self._plans = [
            plan_events(
                np.random.default_rng([seed, i, _EVENTS]),
                length=length,
                channels=channels,
                anomaly_rate=anomaly_rate,
                kinds=kinds,
                min_gap=min_gap,
                fast_period=model.fast_period,
                seed=(seed, i, _EVENT_DETAIL),
            )
            for i, model in enumerate(self.models)
        ]
        self._plan_stops = [
            np.array([e.stop for e in plan], dtype=np.int64) for plan in self._plans
        ]

    @property
    def total(self) -> int:
        """Readings of all sensors together."""
        return len(self.sensor_ids) * self.length

    @property
    def events(self) -> list[AnomalyEvent]:
        """Every injected event, ordered by start time."""
        events = [
            AnomalyEvent(
                sensor_id=self.sensor_ids[i],
                kind=e.kind,
                start_ts=int(self._ts(i, np.array([e.start]))[0]),
                end_ts=int(self._ts(i, np.array([e.stop - 1]))[0]),
                start=e.start,
                stop=e.stop,
                channels=tuple(self.channels[c] for c in e.channels),
            )
            for i, plan in enumerate(self._plans)
            for e in plan
        ]
        return sorted(events, key=lambda e: (e.start_ts, e.sensor_id))

    def block(self, sensor: int, start: int, stop: int) -> SensorSeries:
        """Readings ``start..stop-1`` of sensor number ``sensor``, anomalies and labels included."""
        model = self.models[sensor]
        values = model.normal(start, stop)
        labels = np.zeros(stop - start, dtype=np.int8)
        for event in self._overlapping(sensor, start, stop):
            lo, hi = max(start, event.start), min(stop, event.stop)
            values[lo - start : hi - start] = render(event, model)[
                lo - event.start : hi - event.start
            ]
            labels[lo - start : hi - start] = 1
        return SensorSeries(
            self.sensor_ids[sensor],
            self._ts(sensor, np.arange(start, stop)),
            np.round(values, DECIMALS),
            self.channels,
            labels,
            SOURCE,
        )

    def series(self, sensor: int) -> SensorSeries:
        """All readings of sensor number ``sensor``."""
        return self.block(sensor, 0, self.length)

    def chunks(self, readings: int = 4096) -> Iterator[list[SensorSeries]]:
        """The run in consecutive time slices of about ``readings`` readings (all sensors)."""
        step = max(1, readings // len(self.sensor_ids))
        for start in range(0, self.length, step):
            stop = min(self.length, start + step)
            yield [self.block(i, start, stop) for i in range(len(self.sensor_ids))]

    def readings(self) -> Iterator[Reading]:
        """Every reading, with its label, in time order; generated as it is consumed."""
        for chunk in self.chunks():
            yield from SimulatedData(chunk, []).readings()

    def _overlapping(self, sensor: int, start: int, stop: int) -> Iterator[Injection]:
        plan = self._plans[sensor]
        index = int(np.searchsorted(self._plan_stops[sensor], start, side="right"))
        while index < len(plan) and plan[index].start < stop:
            yield plan[index]
            index += 1

    def _ts(self, sensor: int, t: np.ndarray) -> np.ndarray:
        slots = t.astype(np.float64) * len(self.sensor_ids) + sensor
        return self.start_ms + np.rint(slots * 1000.0 / self.rate).astype(np.int64)


def length_for(duration_s: float, rate: float, sensors: int) -> int:
    """How many readings each of ``sensors`` sensors emits in ``duration_s`` at ``rate`` in total."""
    if not (duration_s > 0 and rate > 0 and sensors > 0):
        raise ConfigError(
            f"duration ({duration_s}), rate ({rate}) and sensors ({sensors}) must all be > 0"
        )
    per_sensor = duration_s * rate / sensors
    # Checked before round(): inf (--rate 1e308) would overflow it, and a run beyond the
    # timestamps' span would only be refused later as a misleading "start" error.
    if not (duration_s * 1000 < MAX_TS_MS and per_sensor <= MAX_TS_MS):
        raise ConfigError(
            f"{duration_s:g} s at {rate:g} readings/s does not fit the timestamps (1970..2100, "
            "one reading per millisecond per sensor at most); give a shorter --duration or "
            "a lower --rate"
        )
    count = round(per_sensor)
    if count < 1:
        raise ConfigError(
            f"{duration_s} s at {rate} readings/s is less than one reading for each of "
            f"{sensors} sensors; run longer, faster or with fewer sensors"
        )
    return count


def simulate(
    sensors: int = 10,
    readings_per_sensor: int | None = None,
    *,
    duration_s: float | None = None,
    rate: float = 100.0,
    channels: int = 3,
    anomaly_rate: float = 0.0,
    seed: int = 0,
    start_ms: int = DEFAULT_START_MS,
    kinds: Sequence[str] = ANOMALY_KINDS,
    min_gap: int = DEFAULT_MIN_GAP,
) -> SimulatedData:
    """Simulate a run in memory: give ``readings_per_sensor``, or ``duration_s`` (at ``rate``).

    ``anomaly_rate`` is the expected fraction of readings inside anomaly events
    (0: normal data only); ``kinds`` limits the kinds of events injected.
    """
    if (readings_per_sensor is None) == (duration_s is None):
        raise ConfigError("give either readings_per_sensor or duration_s")
    length = readings_per_sensor or length_for(duration_s, rate, sensors)
    simulator = Simulator(
        sensors,
        length,
        rate=rate,
        channels=channels,
        anomaly_rate=anomaly_rate,
        seed=seed,
        start_ms=start_ms,
        kinds=kinds,
        min_gap=min_gap,
    )
    return SimulatedData([simulator.series(i) for i in range(sensors)], simulator.events)


def _check(
    sensors: int,
    length: int,
    rate: float,
    channels: int,
    anomaly_rate: float,
    seed: int,
    min_gap: int,
) -> None:
    problems = []
    if sensors < 1:
        problems.append(f"sensors must be >= 1, got {sensors}")
    if length < 1:
        problems.append(f"readings per sensor must be >= 1, got {length}")
    if not (math.isfinite(rate) and rate > 0):
        problems.append(f"rate must be > 0 readings/s, got {rate}")
    elif sensors >= 1 and rate / sensors > MAX_SENSOR_RATE:
        problems.append(
            f"{rate} readings/s over {sensors} sensor(s) is more than {MAX_SENSOR_RATE:g} "
            "readings/s per sensor, finer than the millisecond timestamps; add sensors or "
            "lower the rate"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        problems.append(f"channels must be 1..{MAX_CHANNELS}, got {channels}")
    if not 0.0 <= anomaly_rate < 1.0:
        problems.append(f"anomaly rate must be in [0, 1), got {anomaly_rate}")
    if seed < 0:
        problems.append(f"seed must be >= 0, got {seed}")
    if min_gap < 1:
        problems.append(f"min_gap must be >= 1 reading, got {min_gap}")
    if problems:
        raise ConfigError("; ".join(problems))
