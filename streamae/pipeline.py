"""The detection core: readings → windows → detector → threshold → alerts.

The same ``Pipeline`` runs offline (``streamae detect``), live (the Kafka
monitor) and in tests; Kafka never enters it. ``process`` takes a batch of
readings and, per step:

1. windows — each reading goes into its sensor's sliding window;
2. detector — every window that became ready in the batch is scored in ONE
   ``detector.score`` call per detector (per round, with a sensor memory: below);
3. threshold — in input order, each window's score is compared with its
   sensor's rolling threshold, which then learns the score unless it was
   flagged or an alert is open;
4. alerts — the sensor's tracker opens/closes alerts.

With ``Settings.sensor_memory`` each sensor also remembers the codes of its
windows judged normal, for the autoencoder to rebuild from (the threshold's
rule; ``streamae.detectors.memory.SensorMemory``). A code is usable by the
sensor's windows at least ``max(sensor_memory_delay, W / stride)`` later, from
the next end of a block of ``W / stride`` windows; a batch is scored in rounds
of one block per sensor. ``snapshot`` holds the memory's counters, and
``memory_changes`` the chunks of codes to store beside it.

A window's threshold (and memory) depends only on the earlier windows of its
sensor, so a batch gives exactly the same scores and alerts as the same
readings one at a time.
Window sizes come from the detectors (a model is trained for one); the stride,
reordering, threshold and alert settings from ``Settings``.

>>> import numpy as np
>>> from streamae.detectors.zscore import ZScoreDetector
>>> detector = ZScoreDetector(("value",), 4, [0.0], [1.0], np.linspace(0.5, 1.5, 50))
>>> pipeline = Pipeline(Settings(window_size=4, alert_open_after=1), detector)
>>> out = pipeline.process([Reading("s", ts, {"value": 0.0}) for ts in range(4)])
>>> [(s.ts, s.score, s.is_anomaly) for s in out.scores]
[(3, 0.0, False)]
>>> out = pipeline.process([Reading("s", 4, {"value": 40.0})])
>>> out.alerts[0].state, out.alerts[0].opened_at
('open', 4)
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import numpy as np

from streamae.alerts import AlertTracker
from streamae.config import Settings
from streamae.detectors.base import Detector, NormalMemory
from streamae.exceptions import ConfigError, ModelError
from streamae.messages import Alert, Reading, Score
from streamae.thresholds import make_threshold
from streamae.thresholds.base import Threshold, check_normal_scores
from streamae.windows import Pushed, ReadyWindow, SensorWindow

log = logging.getLogger(__name__)

#: Format version of ``Pipeline.snapshot``.
STATE_VERSION = 1
#: Fewest windows per ``detector.score`` call (see ``_score_batch``).
MIN_BATCH = 8


@dataclass
class Output:
    """What one ``process`` (or ``flush``) call produced."""

    scores: list[Score] = field(default_factory=list)
    """One per window scored, in input order."""
    alerts: list[Alert] = field(default_factory=list)
    """Alert open/close events, in order."""
    rejected: list[tuple[int, str]] = field(default_factory=list)
    """``(index into the input batch, reason)`` of readings that could not be used."""


class DetectorRegistry:
    """Which detector scores which sensor: ``fnmatch`` patterns on sensor_id, first match wins."""

    def __init__(self, default: Detector, routes: Sequence[tuple[str, Detector]] = ()) -> None:
        self.default = default
        self.routes = tuple(routes)
        for detector in self.detectors():
            check_normal_scores(
                detector.normal_scores,
                f"model {detector.version}",
                "retrain it on more normal data",
            )

    def for_sensor(self, sensor_id: str) -> Detector:
        for pattern, detector in self.routes:
            if fnmatch.fnmatchcase(sensor_id, pattern):
                return detector
        return self.default

    def detectors(self) -> list[Detector]:
        """Every distinct detector, default first."""
        unique: dict[int, Detector] = {id(self.default): self.default}
        for _, detector in self.routes:
            unique.setdefault(id(detector), detector)
        return list(unique.values())


class _Sensor:
    """Everything the pipeline keeps for one sensor."""

    __slots__ = ("sensor_id", "detector", "window", "threshold", "alerts", "memory")

    def __init__(
        self, sensor_id: str, detector: Detector, settings: Settings, threshold: Threshold
    ) -> None:
        self.sensor_id = sensor_id
        self.detector = detector
        self.window = SensorWindow(
            detector.window_size,
            len(detector.channels),
            settings.stride,
            settings.reorder_tolerance_ms,
            settings.max_gap_ms,
        )
        self.threshold = threshold
        self.alerts = AlertTracker(
            sensor_id,
            detector.channels,
            detector.version,
            settings.alert_open_after,
            settings.alert_close_after,
            settings.alert_rearm,
            settings.alert_fade,
        )
        self.memory: NormalMemory | None = None
        if settings.sensor_memory and detector.can_remember:
            block = -(-detector.window_size // settings.stride)
            self.memory = detector.sensor_memory(
                settings.sensor_memory, block, settings.sensor_memory_delay
            )


class Pipeline:
    """Per-sensor windows, thresholds and alerts around one or more detectors."""

    def __init__(self, settings: Settings, detectors: DetectorRegistry | Detector) -> None:
        self.settings = settings
        self.registry = (
            detectors if isinstance(detectors, DetectorRegistry) else DetectorRegistry(detectors)
        )
        for detector in self.registry.detectors():
            if settings.stride > detector.window_size:
                raise ConfigError(
                    f"stride {settings.stride} exceeds the window size {detector.window_size} "
                    f"of model {detector.version}; use a stride <= {detector.window_size}"
                )
            if settings.sensor_memory and not detector.can_remember:
                log.warning(
                    "model %s cannot rebuild from a sensor memory (not an autoencoder with a "
                    "memory of normal codes): sensor_memory is ignored for its sensors",
                    detector.version,
                )
        self._remembers = bool(settings.sensor_memory) and any(
            detector.can_remember for detector in self.registry.detectors()
        )
        self._sensors: dict[str, _Sensor] = {}
        # One calibrated threshold per model; each new sensor starts from a copy.
        self._thresholds = {
            id(detector): make_threshold(settings, detector.normal_scores)
            for detector in self.registry.detectors()
        }
        #: Running totals: "readings", "windows", "duplicate", "late", "rejected".
        self.counts: Counter[str] = Counter()

    def process(self, readings: Sequence[Reading]) -> Output:
        """Push ``readings`` through the windows and score every window that became ready."""
        out = Output()
        ready: list[ReadyWindow] = []
        owners: list[_Sensor] = []
        self._push(readings, ready, owners, out.rejected)
        self._score(ready, owners, out)
        return out

    def prime(self, readings: Sequence[Reading]) -> list[tuple[int, str]]:
        """Fill the windows with ``readings`` (e.g. the end of the training data) without scoring.

        Returns the rejected readings like ``Output.rejected``.
        """
        ready: list[ReadyWindow] = []
        owners: list[_Sensor] = []
        rejected: list[tuple[int, str]] = []
        self._push(readings, ready, owners, rejected)
        for sensor in dict.fromkeys(owners):
            sensor.window.flush(ready)
        return rejected

    def flush(self) -> Output:
        """Release and score every reading held back for reordering."""
        out = Output()
        ready: list[ReadyWindow] = []
        owners: list[_Sensor] = []
        for sensor in self._sensors.values():
            before = len(ready)
            sensor.window.flush(ready)
            owners.extend([sensor] * (len(ready) - before))
        self._score(ready, owners, out)
        return out

    def forget(self, sensor_ids: Iterable[str]) -> None:
        """Drop the state of these sensors (e.g. their partitions were revoked)."""
        for sensor_id in sensor_ids:
            self._sensors.pop(sensor_id, None)

    def sensors(self) -> list[str]:
        """The sensors with state, in the order they were first seen."""
        return list(self._sensors)

    def snapshot(self, sensor_id: str) -> dict[str, Any]:
        """JSON-able state of one sensor: window buffer, threshold and alert state, and
        its sensor memory's counters (its codes: ``memory_changes``)."""
        sensor = self._sensors[sensor_id]
        state = {
            "version": STATE_VERSION,
            "model_version": sensor.detector.version,
            "channels": list(sensor.detector.channels),
            "window": sensor.window.state(),
            "threshold": sensor.threshold.state(),
            "alerts": sensor.alerts.state(),
        }
        if sensor.memory is not None:
            state["memory"] = sensor.memory.state()
        return state

    def memory_changes(self, sensor_id: str) -> tuple[dict[int, dict[str, Any]], list[int]]:
        """The sensor memory's chunks of codes changed since the last call, and the numbers
        of those it no longer needs (``SensorMemory.changes``; none without a memory)."""
        memory = self._sensors[sensor_id].memory
        return memory.changes() if memory is not None else ({}, [])

    def memory_moved(self, sensor_id: str) -> range:
        """The sensor's checkpoint moves to another partition: the next ``memory_changes``
        gives every chunk its memory holds. Returns the chunk numbers stored before."""
        memory = self._sensors[sensor_id].memory
        return memory.moved() if memory is not None else range(0)

    def memory_stored(self, sensor_id: str) -> range:
        """The numbers of the sensor memory's chunks a checkpoint may hold (none for a
        sensor without a memory, or without state)."""
        sensor = self._sensors.get(sensor_id)
        return sensor.memory.stored() if sensor and sensor.memory is not None else range(0)

    def restore(
        self,
        sensor_id: str,
        state: dict[str, Any],
        memory: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        """Load a ``snapshot`` (and ``memory``, the chunks ``memory_changes`` gave). The
        window is kept if the channels still match; the threshold, alert state and
        sensor memory only if the model is the same one."""
        sensor = self._new_sensor(sensor_id, self.registry.for_sensor(sensor_id))
        self._sensors[sensor_id] = sensor
        if state.get("version") != STATE_VERSION:
            log.warning(
                "sensor %s: state format %s unknown; starting fresh",
                sensor_id,
                state.get("version"),
            )
            return
        if tuple(state["channels"]) != sensor.detector.channels:
            log.warning("sensor %s: saved state has other channels; starting fresh", sensor_id)
            return
        sensor.window.restore(state["window"])
        if state["model_version"] != sensor.detector.version:
            log.info(
                "sensor %s: model changed (%s → %s); threshold and alerts start fresh",
                sensor_id,
                state["model_version"],
                sensor.detector.version,
            )
            return
        sensor.threshold.restore(state["threshold"])
        sensor.alerts.restore(state["alerts"])
        if sensor.memory is not None and "memory" in state:
            try:
                sensor.memory.restore(state["memory"], memory or {})
            except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
                # A record off the state topic: whatever is wrong with it, the memory starts again.
                log.warning(
                    "sensor %s: sensor memory not restorable (%s); it learns its normal "
                    "windows again",
                    sensor_id,
                    exc,
                )

    def _new_sensor(self, sensor_id: str, detector: Detector) -> _Sensor:
        threshold = self._thresholds[id(detector)].fresh()
        return _Sensor(sensor_id, detector, self.settings, threshold)

    def _push(
        self,
        readings: Sequence[Reading],
        ready: list[ReadyWindow],
        owners: list[_Sensor],
        rejected: list[tuple[int, str]],
    ) -> None:
        sensors = self._sensors
        counts = self.counts
        counts["readings"] += len(readings)
        for index, reading in enumerate(readings):
            sensor = sensors.get(reading.sensor_id)
            detector = sensor.detector if sensor else self.registry.for_sensor(reading.sensor_id)
            row = _row(reading.values, detector.channels)
            if row is None or not all(map(math.isfinite, reading.values.values())):
                # A NaN would poison the sensor's next W windows (and open an alert).
                reason = (
                    _mismatch(reading.values, detector.channels)
                    if row is None
                    else _not_finite(reading.values)
                )
                rejected.append((index, reason))
                counts["rejected"] += 1
                continue
            if sensor is None:
                sensor = sensors[reading.sensor_id] = self._new_sensor(reading.sensor_id, detector)
            before = len(ready)
            pushed = sensor.window.push(reading.ts_ms, row, reading.label, ready)
            if pushed is not Pushed.ACCEPTED:
                counts[pushed.name.lower()] += 1
            if len(ready) > before:
                owners.extend([sensor] * (len(ready) - before))

    def _score(self, ready: list[ReadyWindow], owners: list[_Sensor], out: Output) -> None:
        if not ready:
            return
        self.counts["windows"] += len(ready)
        count = len(ready)
        scored = _Scored(
            np.empty(count), [np.empty(0)] * count, [None] * count, [None] * count, [[]] * count
        )
        # With sensor memories: rounds of one memory block per sensor.
        for positions in _rounds(owners) if self._remembers else [range(count)]:
            self._score_round(ready, owners, positions, scored)
        out.scores.extend(cast(list[Score], scored.results))  # every position is scored
        for events in scored.alerts:
            out.alerts.extend(events)

    def _score_round(
        self,
        ready: list[ReadyWindow],
        owners: list[_Sensor],
        positions: Sequence[int],
        scored: _Scored,
    ) -> None:
        """Score ``positions`` (in input order) into ``scored``; no sensor memory changes
        until the last of them is scored."""
        scores, errors, codes, results, alerts = scored
        groups: dict[int, list[int]] = {}
        for position in positions:
            groups.setdefault(id(owners[position].detector), []).append(position)
        for group in groups.values():
            detector = owners[group[0]].detector
            windows = [ready[p][2] for p in group]
            memories = [owners[p].memory for p in group] if self._remembers else []
            if any(m is not None for m in memories):
                # One items() per sensor: the detector searches each sensor's memory once.
                known: dict[int, Any] = {}
                items = [
                    known.setdefault(id(m), m.items()) if m is not None else None for m in memories
                ]
                batch_scores, batch_errors, batch_codes = _score_batch(detector, windows, items)
                for p, code in zip(group, batch_codes, strict=True):
                    codes[p] = code
            else:
                batch_scores, batch_errors, _ = _score_batch(detector, windows)
            if len(batch_scores) != len(group) or len(batch_errors) != len(group):
                raise ModelError(
                    f"model {detector.version} returned {len(batch_scores)} scores for "
                    f"{len(group)} windows"
                )
            scores[group] = batch_scores
            for p, channel_errors in zip(group, batch_errors, strict=True):
                errors[p] = channel_errors
        for position in positions:
            ts_ms, label, window = ready[position]
            sensor = owners[position]
            channels = sensor.detector.channels
            score = float(scores[position])
            threshold = sensor.threshold.value()
            alerts[position] = sensor.alerts.update(ts_ms, score, threshold, errors[position])
            is_anomaly = sensor.alerts.is_open
            # The threshold never learns from what it flags, nor during an alert,
            # so a long anomaly cannot raise its own bar and stays flagged.
            normal = score <= threshold and not is_anomaly
            if normal:
                sensor.threshold.learn(score)
            if sensor.memory is not None:
                sensor.memory.add(codes[position], normal)
            results[position] = Score(
                sensor_id=sensor.sensor_id,
                ts=ts_ms,
                values=dict(zip(channels, window[-1].tolist(), strict=True)),
                score=score,
                threshold=threshold,
                is_anomaly=is_anomaly,
                channel_errors=dict(zip(channels, errors[position].tolist(), strict=True)),
                model_version=sensor.detector.version,
                label=label,
            )


class _Scored(NamedTuple):
    """What a batch's windows got, by position: scores, per-channel errors, codes (None:
    not asked for), the published ``Score`` and the alert events."""

    scores: np.ndarray
    errors: list[np.ndarray]
    codes: list[Any]
    results: list[Score | None]
    alerts: list[list[Alert]]


def _rounds(owners: list[_Sensor]) -> list[list[int]]:
    """The positions of a batch's windows in rounds: round r holds each sensor's windows of
    the r-th memory block it reaches in the batch (all, when no sensor has a memory)."""
    rounds: list[list[int]] = [[]]
    seen: Counter[_Sensor] = Counter()
    for position, sensor in enumerate(owners):
        memory = sensor.memory
        number = 0
        if memory is not None:
            index = memory.scored + seen[sensor]
            seen[sensor] += 1
            number = index // memory.block - memory.scored // memory.block
        while len(rounds) <= number:
            rounds.append([])
        rounds[number].append(position)
    return rounds


def _score_batch(
    detector: Detector, windows: list[np.ndarray], memories: list[Any] | None = None
) -> tuple[np.ndarray, np.ndarray, Any]:
    """``detector.score`` of ``windows`` (``score_remembering`` with ``memories``), padded
    to at least ``MIN_BATCH`` windows; the codes are None without ``memories``.

    Torch's CPU kernels take another code path for a batch of one or two windows,
    whose float32 results differ in the last bits; padding makes a window's score
    the same whether it was scored alone (a quiet stream) or in a large batch.
    """
    count = len(windows)
    if count < MIN_BATCH:
        windows = windows + [windows[-1]] * (MIN_BATCH - count)
        if memories is not None:
            memories = memories + [memories[-1]] * (MIN_BATCH - count)
    if memories is None:
        scores, errors = detector.score(np.stack(windows))
        return scores[:count], errors[:count], None
    scores, errors, codes = detector.score_remembering(np.stack(windows), memories)
    return scores[:count], errors[:count], codes[:count]


def _row(values: dict[str, float], channels: tuple[str, ...]) -> np.ndarray | None:
    """The reading's values in model channel order, or None if the channel sets differ."""
    if len(values) != len(channels):
        return None
    try:
        return np.array([values[c] for c in channels], dtype=np.float64)
    except KeyError:
        return None


def _not_finite(values: dict[str, float]) -> str:
    names = ", ".join(sorted(c for c, v in values.items() if not math.isfinite(v)))
    return f"channel(s) {names}: not a finite number"


def _mismatch(values: dict[str, float], channels: tuple[str, ...]) -> str:
    def braces(names: Iterable[str]) -> str:
        return "{" + ", ".join(sorted(names)) + "}"

    return f"channels {braces(values)} do not match the model's {braces(channels)}"
