"""Speed of the bare model: batched (the ceiling) and one window per call (the naive way)."""

from __future__ import annotations

import time

import numpy as np

from streamae.detectors.base import Detector


def ceiling(detector: Detector, batch: int, seconds: float) -> tuple[float, float]:
    """Windows/s of ``detector.score`` on batches of ``batch`` random windows, for ~``seconds``.

    Returns windows per second of wall time and per second of this process's CPU time
    (the second does not depend on what else the machine runs).
    """
    shape = (batch, detector.window_size, len(detector.channels))
    windows = np.random.default_rng(0).normal(size=shape)
    detector.score(windows)  # the first call allocates; it is not what runs all day
    scored = 0
    cpu = time.process_time()
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or scored == 0:
        detector.score(windows)
        scored += batch
    return scored / elapsed, scored / max(time.process_time() - cpu, 1e-9)


def naive(detector: Detector, windows: np.ndarray, max_seconds: float) -> tuple[float, int]:
    """Windows/s scoring each of ``windows`` alone (batch of 1); stops after ``max_seconds``.

    Returns the rate and how many windows were scored.
    """
    detector.score(windows[:1])
    start = time.perf_counter()
    scored = 0
    for window in windows:
        detector.score(window[None])
        scored += 1
        if time.perf_counter() - start >= max_seconds:
            break
    return scored / (time.perf_counter() - start), scored
