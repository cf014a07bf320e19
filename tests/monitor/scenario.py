"""The simulated traffic the monitor tests share, and a detector that reliably catches it.

Spike events on 8 three-channel sensors (seed 7). One z-score detector per sensor,
fitted on that sensor's first ``train`` normal readings, scores only a window's
newest reading (``tail=1``); with ``ALERT_SETTINGS`` every spike event opens
exactly one alert and normal traffic none (checked offline on seeds 1, 2, 3, 7
with k from 12 to 15: all events found, no false alert). The monitor is fed the
readings *after* the training part, as it would be in production.

The window is short (4) to keep the tests fast; a restarted monitor restores its
sensors' windows from the state topic, so no event falls into a refill gap.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass

from streamae.detectors.zscore import ZScoreDetector
from streamae.messages import Alert, Reading
from streamae.pipeline import DetectorRegistry
from streamae.simulate import AnomalyEvent, simulate

ALERT_SETTINGS = {
    "threshold_k": 15.0,
    "alert_open_after": 1,
    # Spikes of one event are < 30 readings apart: one alert per event, closed
    # well before the next event (events are >= 192 readings apart).
    "alert_close_after": 40,
    "window_size": 4,
}


@dataclass(frozen=True)
class DetectorSpec:
    """Fit one z-score detector per simulated sensor on its first ``train`` normal readings."""

    sensors: int = 8
    train: int = 2000
    seed: int = 7
    channels: int = 3
    window: int = 4
    tail: int = 1

    def registry(self) -> DetectorRegistry:
        normal = simulate(
            sensors=self.sensors,
            readings_per_sensor=self.train,
            anomaly_rate=0.0,
            seed=self.seed,
            channels=self.channels,
        )
        routes = [
            (s.sensor_id, ZScoreDetector.fit([s], self.window, tail=self.tail))
            for s in normal.series
        ]
        return DetectorRegistry(routes[0][1], routes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


@dataclass(frozen=True)
class SpikeRun:
    """Readings to stream, the events among them, and those the monitor must catch."""

    readings: list[Reading]
    events: list[AnomalyEvent]
    expected: list[AnomalyEvent]


def spike_run(spec: DetectorSpec, streamed: int, anomaly_rate: float = 0.05) -> SpikeRun:
    """``streamed`` readings per sensor following the ``spec.train`` training readings."""
    run = simulate(
        sensors=spec.sensors,
        readings_per_sensor=spec.train + streamed,
        anomaly_rate=anomaly_rate,
        seed=spec.seed,
        channels=spec.channels,
        kinds=("spike",),
    )
    first_ts = int(run.series[0].ts_ms[spec.train])
    readings = [r for r in run.readings() if r.ts_ms >= first_ts]
    events = [e for e in run.events if e.stop > spec.train]
    # A sensor's first window is ready after `window` readings; events before that are unseen.
    expected = [e for e in events if e.start >= spec.train + spec.window]
    return SpikeRun(readings, events, expected)


def match_alerts(
    alerts: Iterable[Alert], events: list[AnomalyEvent]
) -> tuple[dict[int, list[Alert]], list[Alert]]:
    """Opened alerts per event index (same sensor, opened during the event), and the rest."""
    per_event: dict[int, list[Alert]] = {}
    unmatched = []
    for alert in alerts:
        if alert.state != "open":
            continue
        found = next(
            (
                i
                for i, e in enumerate(events)
                if e.sensor_id == alert.sensor_id and e.start_ts <= alert.opened_at <= e.end_ts
            ),
            None,
        )
        if found is None:
            unmatched.append(alert)
        else:
            per_event.setdefault(found, []).append(alert)
    return per_event, unmatched
