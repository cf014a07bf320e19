"""The benchmark's model and readings: the product's default architecture, simulated data.

The weights do not matter for speed, the architecture and sizes do: the model is
``TrainConfig()`` (the defaults ``streamae train`` ships) with the benchmark's
window, trained for one epoch on a little simulated normal data.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from streamae.detectors.autoencoder import AutoencoderDetector
from streamae.messages import encode_reading
from streamae.simulate import SimulatedData, Simulator
from streamae.tables import SensorSeries
from streamae.training import TrainConfig, train_detector

#: Training data of the benchmark model: enough windows for one quick epoch.
TRAIN_SENSORS = 4
TRAIN_READINGS = 1500
TRAIN_MAX_WINDOWS = 2048
#: A few anomalies, so the monitor also opens and closes alerts while it is timed.
ANOMALY_RATE = 0.01

#: ``(key, value)`` of one readings record, both bytes.
Message = tuple[bytes, bytes]


def bench_model(window: int, channels: int, seed: int = 0) -> AutoencoderDetector:
    """A default-architecture detector for ``[window, channels]`` windows, trained 1 epoch."""
    simulator = Simulator(TRAIN_SENSORS, TRAIN_READINGS, channels=channels, seed=seed)
    series = [simulator.series(i) for i in range(TRAIN_SENSORS)]
    config = replace(
        TrainConfig(), window=window, epochs=1, max_windows=TRAIN_MAX_WINDOWS, seed=seed
    )
    return train_detector(series, config, progress=False)


def bench_series(sensors: int, per_sensor: int, channels: int, seed: int = 1) -> list[SensorSeries]:
    """``per_sensor`` simulated readings of each of ``sensors`` sensors."""
    simulator = Simulator(
        sensors, per_sensor, channels=channels, anomaly_rate=ANOMALY_RATE, seed=seed
    )
    return [simulator.series(i) for i in range(sensors)]


def messages(series: list[SensorSeries]) -> list[Message]:
    """Every reading of ``series`` as a readings record, in time order (key = sensor_id)."""
    keys: dict[str, bytes] = {}
    return [
        (keys.setdefault(r.sensor_id, r.sensor_id.encode()), encode_reading(r))
        for r in SimulatedData(series, []).readings()
    ]


def sample_windows(series: list[SensorSeries], window: int, count: int) -> np.ndarray:
    """``count`` windows ``[count, window, C]`` taken evenly across the sensors and time."""
    rng = np.random.default_rng(0)
    picks = []
    for i in range(count):
        values = series[i % len(series)].values
        start = int(rng.integers(0, len(values) - window + 1))
        picks.append(values[start : start + window])
    return np.stack(picks)
