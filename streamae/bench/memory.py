"""Memory per sensor: how much the pipeline's state grows with each new sensor.

Measured in a fresh process, so nothing the benchmark did before blurs it: load
the model, warm everything up on a throwaway pipeline, then push ``window``
readings for each of ``sensors`` sensors through ``Pipeline.process`` (in
poll-sized batches, as the monitor does, so each sensor scores one window).
Two figures:

- RSS growth per sensor: what the process really pays, allocator slack included
  (freed temporaries of the batches leave holes the heap does not give back);
- live state per sensor: the bytes still allocated afterwards (``tracemalloc``,
  which numpy reports to), measured on a second, smaller set of sensors.

Minus the window buffer (``2 · W · C`` float64, see ``streamae.windows``) and per
channel, each is the rest of the state per sensor-channel.
"""

from __future__ import annotations

import gc
import multiprocessing
import resource
import tracemalloc
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from streamae.exceptions import StreamaeError

#: Readings per ``Pipeline.process`` call: the monitor's default poll size.
BATCH_READINGS = 5000
WARM_SENSORS = 16
#: Sensors of the traced measurement (tracing makes every allocation slower).
TRACED_SENSORS = 1000


def state_growth(model_dir: str, sensors: int, timeout_s: float) -> dict[str, Any]:
    """Run ``_measure`` in a new process; its result, or a ``StreamaeError``."""
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    process = context.Process(
        target=_measure, args=(model_dir, sensors, child), name="streamae-bench-memory"
    )
    process.start()
    try:
        if not conn.poll(timeout_s):
            raise StreamaeError(f"the memory measurement did not finish within {timeout_s:.0f} s")
        kind, payload = conn.recv()
        if kind == "error":
            raise StreamaeError(f"the memory measurement failed: {payload}")
        return payload
    finally:
        if process.is_alive():
            process.kill()
        process.join(10)
        conn.close()


def _measure(model_dir: str, sensors: int, conn: Connection) -> None:
    try:
        from streamae import artifact
        from streamae.config import Settings
        from streamae.pipeline import Pipeline

        detector = artifact.load(model_dir)
        window, channels = detector.window_size, detector.channels
        settings = Settings.load(window_size=window, stride=1)
        _feed(Pipeline(settings, detector), WARM_SENSORS, window, channels)
        gc.collect()
        before = _rss_bytes()
        pipeline = Pipeline(settings, detector)
        _feed(pipeline, sensors, window, channels)
        gc.collect()
        growth = _rss_bytes() - before
        rss_per_sensor = growth / sensors
        traced = min(sensors, TRACED_SENSORS)
        tracemalloc.start()
        try:
            gc.collect()
            start = tracemalloc.get_traced_memory()[0]
            other = Pipeline(settings, detector)
            _feed(other, traced, window, channels)
            gc.collect()
            live_per_sensor = (tracemalloc.get_traced_memory()[0] - start) / traced
        finally:
            tracemalloc.stop()
        window_buffer = 2 * window * len(channels) * 8
        conn.send(
            (
                "ok",
                {
                    "sensors": len(pipeline.sensors()),
                    "windows": int(pipeline.counts["windows"]),
                    "rss_growth_bytes": growth,
                    "rss_bytes_per_sensor": rss_per_sensor,
                    "rss_beyond_window_bytes_per_sensor_channel": (rss_per_sensor - window_buffer)
                    / len(channels),
                    "traced_sensors": len(other.sensors()),
                    "state_bytes_per_sensor": live_per_sensor,
                    "window_buffer_bytes": window_buffer,
                    "state_bytes_per_sensor_channel": (live_per_sensor - window_buffer)
                    / len(channels),
                    "peak_rss_bytes": peak_rss_bytes(),
                },
            )
        )
    except BaseException as exc:  # reported to the parent, which raises it there
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _feed(pipeline: Any, sensors: int, window: int, channels: tuple[str, ...]) -> None:
    """``window`` readings per sensor, time-major like a live stream, in poll-sized batches."""
    from streamae.messages import Reading

    rng = np.random.default_rng(0)
    batch: list[Reading] = []
    for t in range(window):
        values = rng.normal(size=(sensors, len(channels))).tolist()
        for i in range(sensors):
            # A fresh id string per reading, as decoding gives: the pipeline keeps its own.
            batch.append(
                Reading(
                    f"sensor-{i:06d}",
                    1_700_000_000_000 + t,
                    dict(zip(channels, values[i], strict=True)),
                )
            )
            if len(batch) == BATCH_READINGS:
                pipeline.process(batch)
                batch = []
    if batch:
        pipeline.process(batch)


def _rss_bytes() -> int:
    """This process's resident set size now."""
    return _status("VmRSS:")


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    Read from ``/proc`` where there is one: ``ru_maxrss`` survives ``exec``, so in a
    spawned process it can still be the parent's peak.
    """
    return _status("VmHWM:")


def _status(field: str) -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
