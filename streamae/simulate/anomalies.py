"""Labelled anomaly events injected into a sensor's normal readings.

An event spans ``start..stop-1`` readings of one sensor, all labelled 1, and changes
the signal from its first reading to its last. Magnitudes are in units of the
channel's normal standard deviation (``SensorModel.sigma``), well beyond the noise:

=================  ==========  ==========================================================
kind               readings    what happens (on some channels unless said otherwise)
=================  ==========  ==========================================================
spike              10-30       2-6 isolated spikes of 6-10 sigma, at both ends and between
level_shift        50-300      the level jumps by 3-5 sigma and stays there
stuck              40-250      the value freezes at the last good reading (flat line)
noise_burst        30-200      extra noise of 1-2 sigma
frequency_change   60-300      the fast cycle runs 1.8-3x faster or 0.4-0.6x slower (all)
drift              100-400     a ramp away from normal, reaching 3-6 sigma
=================  ==========  ==========================================================

Events of one sensor never overlap and are separated by at least ``min_gap``
normal readings (a few window lengths), so each one is a separate alert. The
random details of an event come from its own seed, so rendering it is the same
whichever slice of the series asks for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamae.exceptions import ConfigError
from streamae.simulate.signals import SensorModel

ANOMALY_KINDS = ("spike", "level_shift", "stuck", "noise_burst", "frequency_change", "drift")
DURATIONS = {
    "spike": (10, 30),
    "level_shift": (50, 300),
    "stuck": (40, 250),
    "noise_burst": (30, 200),
    "frequency_change": (60, 300),
    "drift": (100, 400),
}


@dataclass(frozen=True)
class Injection:
    """One planned event: ``kind`` on ``channels`` (indices) over readings ``start..stop-1``."""

    kind: str
    start: int
    stop: int
    channels: tuple[int, ...]
    seed: tuple[int, ...]
    factor: float = 1.0  # frequency_change: new fast-cycle speed / normal speed


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple, or ``ConfigError`` if empty or unknown."""
    unknown = [k for k in kinds if k not in DURATIONS]
    if unknown or not kinds:
        raise ConfigError(
            f"unknown anomaly kind(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(ANOMALY_KINDS)}"
        )
    return tuple(kinds)


def max_anomaly_rate(kinds: Sequence[str], min_gap: int) -> float:
    """The largest fraction of anomalous readings that still leaves ``min_gap`` between events."""
    mean = _mean_duration(kinds)
    return mean / (mean + min_gap)


def readings_per_event(kinds: Sequence[str], anomaly_rate: float) -> float:
    """A sensor's readings per event on average (the event and the gap after it)."""
    return _mean_duration(kinds) / anomaly_rate


def plan_events(
    rng: np.random.Generator,
    *,
    length: int,
    channels: int,
    anomaly_rate: float,
    kinds: Sequence[str],
    min_gap: int,
    fast_period: float,
    seed: tuple[int, ...],
) -> list[Injection]:
    """The events of one sensor with ``length`` readings, in time order.

    Events and the gaps before them follow a renewal process whose mean gap makes
    ``anomaly_rate`` the expected fraction of readings inside events; an event that
    would run past the end is left out. The plan for a longer series starts with
    the plan for a shorter one.
    """
    if anomaly_rate <= 0:
        return []
    mean = _mean_duration(kinds)
    extra_gap = mean * (1 - anomaly_rate) / anomaly_rate - min_gap
    if extra_gap < -1e-9:
        raise ConfigError(
            f"anomaly rate {anomaly_rate} is too high to keep {min_gap} normal readings "
            f"between events; use at most {max_anomaly_rate(kinds, min_gap):.3f}"
        )
    events: list[Injection] = []
    # Start at a random phase of a mean cycle (event + gap), after one clear gap for warm-up,
    # so that even a short series holds about its share of events.
    t = min_gap + int(rng.integers(0, round(mean + min_gap + extra_gap) + 1))
    while True:
        kind = kinds[rng.integers(len(kinds))]
        factor = 1.0
        if kind == "frequency_change":
            factor = rng.uniform(1.8, 3.0) if rng.random() < 0.5 else rng.uniform(0.4, 0.6)
            duration = _whole_cycles(rng, fast_period, factor)
        else:
            low, high = DURATIONS[kind]
            duration = int(rng.integers(low, high + 1))
        if kind == "frequency_change" or channels == 1:
            affected = tuple(range(channels))
        else:
            count = int(rng.integers(1, channels + 1))
            affected = tuple(sorted(int(c) for c in rng.choice(channels, count, replace=False)))
        if t + duration > length:
            return events
        events.append(
            Injection(kind, t, t + duration, affected, (*seed, len(events)), float(factor))
        )
        t += duration + min_gap + _exponential(rng, extra_gap)


def render(event: Injection, model: SensorModel) -> np.ndarray:
    """The readings ``[stop - start, C]`` of ``model`` during ``event``."""
    values = model.normal(event.start, event.stop)
    rng = np.random.default_rng(event.seed)
    _RENDERERS[event.kind](event, model, values, rng)
    return values


def _spike(event: Injection, model: SensorModel, values: np.ndarray, rng) -> None:
    duration, cols = event.stop - event.start, list(event.channels)
    inner = rng.choice(np.arange(1, duration - 1), int(rng.integers(0, 5)), replace=False)
    rows = np.concatenate([[0, duration - 1], inner]).astype(int)
    size = (len(rows), len(cols))
    jumps = rng.choice([-1.0, 1.0], size) * rng.uniform(6.0, 10.0, size) * model.sigma[cols]
    values[np.ix_(rows, cols)] += jumps


def _level_shift(event: Injection, model: SensorModel, values: np.ndarray, rng) -> None:
    cols = list(event.channels)
    size = len(cols)
    values[:, cols] += (
        rng.choice([-1.0, 1.0], size) * rng.uniform(3.0, 5.0, size) * model.sigma[cols]
    )


def _stuck(event: Injection, model: SensorModel, values: np.ndarray, rng) -> None:
    cols = list(event.channels)
    values[:, cols] = model.normal(event.start - 1, event.start)[0, cols]


def _noise_burst(event: Injection, model: SensorModel, values: np.ndarray, rng) -> None:
    cols = list(event.channels)
    spread = rng.uniform(1.0, 2.0, len(cols)) * model.sigma[cols]
    values[:, cols] += rng.standard_normal((len(values), len(cols))) * spread


def _frequency_change(event: Injection, model: SensorModel, values: np.ndarray, rng) -> None:
    # Time runs ``factor`` times as fast for the fast cycle only, from the last good
    # reading on; the duration is whole extra cycles, so the cycle rejoins its phase.
    t = np.arange(event.start, event.stop, dtype=np.float64)
    anchor = event.start - 1
    warped = anchor + event.factor * (t - anchor)
    values += model.cycle(warped) - model.cycle(t)


def _drift(event: Injection, model: SensorModel, values: np.ndarray, rng) -> None:
    cols = list(event.channels)
    size = len(cols)
    end = rng.choice([-1.0, 1.0], size) * rng.uniform(3.0, 6.0, size) * model.sigma[cols]
    ramp = np.arange(1, len(values) + 1) / len(values)
    values[:, cols] += ramp[:, None] * end


_RENDERERS: dict[str, Callable[..., None]] = {
    "spike": _spike,
    "level_shift": _level_shift,
    "stuck": _stuck,
    "noise_burst": _noise_burst,
    "frequency_change": _frequency_change,
    "drift": _drift,
}


def _mean_duration(kinds: Sequence[str]) -> float:
    return float(np.mean([sum(DURATIONS[k]) / 2 for k in kinds]))


def _exponential(rng: np.random.Generator, mean: float) -> int:
    return int(round(rng.exponential(mean))) if mean > 0 else 0


def _whole_cycles(rng: np.random.Generator, period: float, factor: float) -> int:
    """A frequency-change duration in its range after which the cycle is back in phase."""
    low, high = DURATIONS["frequency_change"]
    # Readings (counted from the anchor) over which the changed cycle gains or loses one cycle.
    unit = period / abs(factor - 1)
    first = max(1, math.ceil((low + 1) / unit))
    last = max(first, math.floor((high + 1) / unit))
    return max(low, round(int(rng.integers(first, last + 1)) * unit) - 1)
