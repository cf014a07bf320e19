"""The real ``Monitor``, as a consumer group of one or more processes, timed from outside.

Each instance gets its own process: Python runs one thread at a time, so a
monitor service uses a machine's cores the way it scales across machines — one
group member per core, each scoring with one torch thread. The benchmark's load
generator never competes with them for a GIL, and each peak RSS is its own.
Every instance reports through a pipe:

- ``("progress", read_to, partitions)`` whenever how far it read (next offset
  per partition, ``Monitor.read_to``) or the number of partitions it owns changed;
- ``("done", stats)`` after the parent said ``("stop",)`` and it published every
  result, committed and closed; ``stats`` holds ``readings`` (replays
  included), ``windows``, ``rewinds``,
  ``started`` and ``finished`` (epoch seconds: its first partition assignment
  and its close), ``cpu_seconds`` (all its threads, over that span) and
  ``peak_rss_bytes``;
- ``("error", message)`` if it failed.

The parent waits until the group settled (every instance owns partitions, and
together all of them), then until the instances together read what it expects,
then stops them all: the group's rate is the readings read after it settled
over the span from then to the last close. "Read" is the furthest offset any
instance reached in each partition of the benchmark's fresh topic (offsets from
0), so a replay after a rewind or a rebalance is not counted twice.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from streamae.bench.memory import peak_rss_bytes
from streamae.bench.processes import openmp_threads, spawn_context
from streamae.config import Settings
from streamae.exceptions import StreamaeError

log = logging.getLogger(__name__)

#: How often an instance reports progress; its reading of the counters costs the
#: monitor's own CPU, so not more often than the parent needs.
WATCH_INTERVAL_S = 0.05
#: An instance that never finishes is killed this long after its own runtime limit.
EXIT_GRACE_S = 30.0


class MonitorGroup:
    """Start, steer and collect ``instances`` monitor processes of one group.

    A context manager that always reaps them.
    """

    def __init__(
        self, settings: Settings, model_dir: str, *, instances: int, max_runtime_s: float
    ) -> None:
        context = spawn_context()
        self._max_runtime_s = max_runtime_s
        self._torch_threads = settings.torch_threads
        self._conns: list[Connection] = []
        self._processes = []
        self._read_to: dict[int, int] = {}
        self._owned = [0] * instances
        for index in range(instances):
            parent, child = context.Pipe()
            self._conns.append(parent)
            self._processes.append(
                context.Process(
                    target=_serve,
                    args=(settings, model_dir, max_runtime_s, child),
                    name=f"streamae-bench-monitor-{index}",
                    daemon=True,
                )
            )

    def __enter__(self) -> MonitorGroup:
        with openmp_threads(self._torch_threads):
            for process in self._processes:
                process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        for conn in self._conns:
            conn.close()

    @property
    def consumed(self) -> int:
        """Distinct readings the instances read together, as last reported."""
        return sum(self._read_to.values())

    def wait_settled(
        self, partitions: int, timeout_s: float, enough: int | None = None
    ) -> tuple[float, int]:
        """Block until the instances own all ``partitions`` and each owns some (as many
        as there are partitions; no rebalance under way), or until they consumed
        ``enough`` readings; returns then (epoch seconds) and the readings consumed."""
        deadline = time.monotonic() + timeout_s
        owners = min(len(self._owned), partitions)
        while sum(self._owned) != partitions or sum(map(bool, self._owned)) != owners:
            if enough is not None and self.consumed >= enough:
                break
            if time.monotonic() > deadline:
                raise StreamaeError(
                    f"the benchmark's {len(self._owned)} monitors own {self._owned} of "
                    f"{partitions} partitions after {timeout_s:.0f} s"
                )
            self._receive(min(1.0, max(0.0, deadline - time.monotonic())))
        return time.time(), self.consumed

    def wait_consumed(self, readings: int, timeout_s: float) -> None:
        """Block until the instances together consumed at least ``readings``."""
        deadline = time.monotonic() + timeout_s
        while self.consumed < readings:
            if time.monotonic() > deadline:
                raise StreamaeError(
                    f"the benchmark's monitors consumed {self.consumed} of {readings} "
                    f"readings within {timeout_s:.0f} s"
                )
            self._receive(min(1.0, max(0.0, deadline - time.monotonic())))

    def stop(self) -> dict[str, Any]:
        """Stop every instance; their stats summed up (see the module docstring)."""
        for conn in self._conns:
            conn.send(("stop",))
        stats = [self._done(index) for index in range(len(self._conns))]
        for process in self._processes:
            process.join(EXIT_GRACE_S)
        started = [s["started"] for s in stats if s["started"] is not None]
        if not started:
            raise StreamaeError("no benchmark monitor was ever assigned a partition")
        return {
            "instances": len(stats),
            "readings": sum(s["readings"] for s in stats),
            "read": self.consumed,
            "rewinds": sum(s["rewinds"] for s in stats),
            "windows": sum(s["windows"] for s in stats),
            "seconds": max(s["finished"] for s in stats) - min(started),
            "finished": max(s["finished"] for s in stats),
            "cpu_seconds": sum(s["cpu_seconds"] for s in stats),
            "peak_rss_bytes": max(s["peak_rss_bytes"] for s in stats),
        }

    def _done(self, index: int) -> dict[str, Any]:
        deadline = time.monotonic() + self._max_runtime_s + EXIT_GRACE_S
        while time.monotonic() < deadline:
            payload = self._receive_one(index, min(1.0, deadline - time.monotonic()))
            if payload is not None:
                return payload
        raise StreamaeError(f"benchmark monitor {index} did not stop in time")

    def _receive(self, timeout_s: float) -> None:
        """Take every pending message of every instance (progress, or failures)."""
        ready = multiprocessing.connection.wait(self._conns, timeout_s)
        for conn in ready:
            index = self._conns.index(conn)
            if self._receive_one(index, 0.0) is not None:
                raise StreamaeError(
                    f"benchmark monitor {index} stopped (its runtime limit) before the "
                    f"group consumed every reading"
                )

    def _receive_one(self, index: int, timeout_s: float) -> dict[str, Any] | None:
        """One message of instance ``index``: its stats if it said done, else None."""
        conn = self._conns[index]
        if not conn.poll(timeout_s):
            return None
        try:
            kind, *payload = conn.recv()
        except EOFError:  # the child's end closed without a word: it died
            self._processes[index].join(EXIT_GRACE_S)
            raise StreamaeError(
                f"benchmark monitor {index} exited (code {self._processes[index].exitcode})"
            ) from None
        if kind == "error":
            raise StreamaeError(f"benchmark monitor {index} failed: {payload[0]}")
        if kind == "progress":
            read_to, self._owned[index] = payload
            for partition, offset in read_to.items():
                self._read_to[partition] = max(self._read_to.get(partition, 0), offset)
            return None
        return payload[0]


class _Watch:
    """Runs beside the monitor loop: notes when it started, reports progress, stops it."""

    def __init__(self, monitor: Any, conn: Connection) -> None:
        self.monitor = monitor
        self.conn = conn
        self.stop = threading.Event()
        self.started: float | None = None
        self.cpu_started = 0.0
        self._lock = threading.Lock()  # the pipe is written by this thread and at the end

    def run(self) -> None:
        reported: tuple[dict[int, int], int] | None = None
        while not self.stop.is_set():
            if self.started is None and self.monitor.assigned:
                self.started = time.time()
                self.cpu_started = time.process_time()
            progress = (dict(self.monitor.read_to), len(self.monitor.assigned))
            if progress != reported:
                self.send(("progress", *progress))
                reported = progress
            if self.conn.poll():
                self.conn.recv()  # ("stop",)
                self.stop.set()
                return
            time.sleep(WATCH_INTERVAL_S)

    def send(self, message: tuple) -> None:
        with self._lock:
            self.conn.send(message)


def _serve(settings: Settings, model_dir: str, max_runtime_s: float, conn: Connection) -> None:
    """One instance: load the model, run the monitor from the start, report."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    watch: _Watch | None = None
    thread: threading.Thread | None = None
    try:
        from streamae import artifact
        from streamae.monitor.service import Monitor

        monitor = Monitor(settings, artifact.load(model_dir), from_beginning=True)
        watch = _Watch(monitor, conn)
        thread = threading.Thread(target=watch.run, name="bench-watch", daemon=True)
        thread.start()
        monitor.run(watch.stop, max_runtime_s)
        finished, cpu = time.time(), time.process_time()
        watch.stop.set()
        thread.join()
        totals = monitor.metrics.totals()
        watch.send(
            (
                "done",
                {
                    "readings": int(totals["readings"]),
                    "windows": int(totals["windows"]),
                    "rewinds": int(totals["rewinds"]),
                    "started": watch.started,
                    "finished": finished,
                    "cpu_seconds": cpu - watch.cpu_started,
                    "peak_rss_bytes": peak_rss_bytes(),
                },
            )
        )
    except BaseException as exc:  # reported to the parent, which raises it there
        if watch is not None and thread is not None and thread.is_alive():
            watch.stop.set()  # the pipe has one writer at a time
            thread.join()
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
