"""Speed of the bare model: batched (the ceiling) and one window per call (the naive way)."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier

import numpy as np

from streamae.bench.processes import openmp_threads, spawn_context
from streamae.detectors.base import Detector
from streamae.exceptions import StreamaeError

#: How long a per-core scorer may take to start (spawn, import torch, load the model).
START_TIMEOUT_S = 120.0


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


def ceiling_group(
    model_dir: str, processes: int, threads: int, batch: int, seconds: float
) -> tuple[float, float]:
    """The ceiling of ``processes`` processes of ``threads`` torch threads scoring at
    once, as the monitor group runs: their windows/s summed, and windows per
    CPU-second of all of them.

    Each loads the artifact in ``model_dir``; they start timing together.
    """
    context = spawn_context()
    barrier = context.Barrier(processes)
    pipes = [context.Pipe(duplex=False) for _ in range(processes)]
    children = [
        context.Process(
            target=_score_alone,
            args=(model_dir, threads, batch, seconds, barrier, sender),
            name=f"streamae-bench-ceiling-{index}",
            daemon=True,
        )
        for index, (_, sender) in enumerate(pipes)
    ]
    try:
        with openmp_threads(threads):
            for child in children:
                child.start()
        for _, sender in pipes:
            sender.close()  # so that a child's death reads as the end of its pipe
        reports = [_receive(receiver, seconds) for receiver, _ in pipes]
    finally:
        for child in children:
            if child.is_alive():
                child.join(10)
            if child.is_alive():
                child.kill()
                child.join(5)
    failures = [report for report in reports if isinstance(report, str)]
    if failures:
        # One scorer's failure breaks the others' barrier: report the cause.
        cause = next((f for f in failures if not f.startswith("BrokenBarrierError")), failures[0])
        raise StreamaeError(f"a model scorer of the benchmark failed: {cause}")
    rates = [report for report in reports if not isinstance(report, str)]
    wall = sum(rate for rate, _ in rates)
    return wall, wall / sum(rate / cpu_rate for rate, cpu_rate in rates)


def _receive(receiver: Connection, seconds: float) -> tuple[float, float] | str:
    """A scorer's (windows/s, windows per CPU-second), or its error message."""
    if not receiver.poll(START_TIMEOUT_S + seconds):
        raise StreamaeError("a model scorer of the benchmark did not report in time")
    try:
        kind, *payload = receiver.recv()
    except EOFError:
        raise StreamaeError("a model scorer of the benchmark died") from None
    return payload[0] if kind == "error" else (payload[0], payload[1])


def _score_alone(
    model_dir: str,
    threads: int,
    batch: int,
    seconds: float,
    barrier: Barrier,
    sender: Connection,
) -> None:
    """One scorer: load the model, wait for the others, time ``ceiling``."""
    try:
        from streamae import artifact

        # Torch runs the ``threads`` OpenMP started with (``openmp_threads``).
        detector = artifact.load(model_dir, device="cpu")
        barrier.wait(START_TIMEOUT_S)
        sender.send(("rate", *ceiling(detector, batch, seconds)))
    except BaseException as exc:  # reported to the parent, which raises it there
        barrier.abort()
        sender.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()


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
