"""Detection quality of the whole chain on simulated data: simulate → train → detect.

Slow (it trains a real autoencoder): deselect with ``-m "not slow"``.
"""

import numpy as np
import pytest

from streamae.config import Settings
from streamae.detect import detect_series
from streamae.simulate import simulate
from streamae.tables import SensorSeries
from streamae.training import TrainConfig, train_detector

SENSORS = 2
TRAIN = 6000
TEST = 12000
SEED = 2


def normal_then_anomalous() -> tuple[list[SensorSeries], list]:
    """Each sensor: TRAIN normal readings, then TEST readings with injected events."""
    clean = simulate(SENSORS, TRAIN + TEST, anomaly_rate=0.0, seed=SEED)
    dirty = simulate(SENSORS, TRAIN + TEST, anomaly_rate=0.08, seed=SEED)
    series = []
    for normal, anomalous in zip(clean.series, dirty.series, strict=True):
        values = np.concatenate([normal.values[:TRAIN], anomalous.values[TRAIN:]])
        labels = np.concatenate([np.zeros(TRAIN, np.int8), anomalous.labels[TRAIN:]])
        series.append(
            SensorSeries(
                normal.sensor_id, normal.ts_ms, values, normal.channels, labels, normal.source
            )
        )
    return series, [e for e in dirty.events if e.start >= TRAIN]


@pytest.mark.slow
def test_most_injected_events_open_an_alert_and_normal_data_almost_never_does():
    series, events = normal_then_anomalous()
    config = TrainConfig(arch="conv", epochs=10, device="cpu")
    detector = train_detector([s.slice(0, TRAIN) for s in series], config, progress=False)
    settings = Settings(window_size=config.window)
    result = detect_series(series, detector, settings, [TRAIN] * SENSORS)

    spans: dict[str, list[tuple[str, int, int]]] = {}
    for alert in result.alerts:
        if alert.state == "open":
            spans.setdefault(alert.sensor_id, []).append((alert.alert_id, alert.opened_at, 2**62))
    closed = {a.alert_id: a.closed_at for a in result.alerts if a.state == "closed"}
    period = {s.sensor_id: int(np.median(np.diff(s.ts_ms))) for s in series}
    # A window still holds an event's readings for W readings after its end.
    lag = {sid: (config.window + settings.alert_open_after) * p for sid, p in period.items()}

    def overlaps(span, event) -> bool:
        alert_id, opened, _ = span
        end = closed.get(alert_id, 2**62)
        return opened <= event.end_ts + lag[event.sensor_id] and end >= event.start_ts

    found = [e for e in events if any(overlaps(s, e) for s in spans.get(e.sensor_id, []))]
    false = [
        s
        for sid, sensor_spans in spans.items()
        for s in sensor_spans
        if not any(overlaps(s, e) for e in events if e.sensor_id == sid)
    ]
    normal_readings = sum(int((s.labels[TRAIN:] == 0).sum()) for s in series)
    found_share = len(found) / len(events)
    false_rate = len(false) / normal_readings * 10_000
    print(
        f"\ninjected events that opened an alert: {len(found)}/{len(events)} = {found_share:.1%}; "
        f"false alerts: {len(false)} over {normal_readings:,} normal readings "
        f"= {false_rate:.2f} per 10,000"
    )
    assert len(events) >= 10
    assert found_share >= 0.9
    assert false_rate <= 1.0
