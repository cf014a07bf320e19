"""The real ``Monitor`` in a process of its own, timed from outside.

The monitor gets its own process so that the benchmark's load generator never
competes with it for the GIL, and so its peak RSS is its own. It reports
through a pipe:

- ``("ready", readings)`` once it has consumed ``ready_after`` readings (its
  partitions are assigned and any preloaded backlog is done);
- ``("done", stats)`` after it consumed ``target`` readings, published every
  result, committed and closed; ``stats`` holds ``readings``, ``windows``,
  ``seconds`` (from partition assignment to that point), ``cpu_seconds`` (the
  process's CPU time, all threads, over the same span) and ``peak_rss_bytes``;
- ``("error", message)`` if it failed.

The parent may raise the target later by sending ``("target", n)``.
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
from streamae.config import Settings
from streamae.exceptions import StreamaeError

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.01
#: A monitor that never finishes is killed this long after its own runtime limit.
EXIT_GRACE_S = 30.0


class MonitorProcess:
    """Start, steer and collect one monitor process (a context manager that always reaps it)."""

    def __init__(
        self,
        settings: Settings,
        model_dir: str,
        *,
        ready_after: int = 0,
        target: int | None = None,
        max_runtime_s: float,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._max_runtime_s = max_runtime_s
        self._process = context.Process(
            target=_serve,
            args=(settings, model_dir, ready_after, target, max_runtime_s, child),
            name="streamae-bench-monitor",
            daemon=True,
        )

    def __enter__(self) -> MonitorProcess:
        self._process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process.is_alive():
            process.terminate()
            process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
        self._conn.close()

    def wait_ready(self, timeout_s: float) -> int:
        """Block until the monitor reports ready; returns the readings it consumed by then."""
        return int(self._expect("ready", timeout_s))

    def set_target(self, readings: int) -> None:
        """Stop once ``readings`` readings were consumed (counting from the start)."""
        self._conn.send(("target", readings))

    def result(self) -> dict[str, Any]:
        """The stats of the finished run (waits at most the runtime limit plus a grace period)."""
        stats = self._expect("done", self._max_runtime_s + EXIT_GRACE_S)
        self._process.join(EXIT_GRACE_S)
        return stats

    def _expect(self, kind: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._conn.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
                got, payload = self._conn.recv()
                if got == "error":
                    raise StreamaeError(f"the benchmark's monitor failed: {payload}")
                if got == kind:
                    return payload
            elif not self._process.is_alive():
                raise StreamaeError(
                    f"the benchmark's monitor exited (code {self._process.exitcode}) "
                    f"before it was {kind}"
                )
        raise StreamaeError(f"the benchmark's monitor was not {kind} within {timeout_s:.0f} s")


class _Watch:
    """Runs beside the monitor loop: notes when it started, says ready, stops it at the target."""

    def __init__(self, monitor: Any, conn: Connection, ready_after: int, target: int | None):
        self.monitor = monitor
        self.conn = conn
        self.ready_after = ready_after
        self.target = target
        self.stop = threading.Event()
        self.started: float | None = None
        self.cpu_started = 0.0

    def run(self) -> None:
        ready_sent = False
        while not self.stop.is_set():
            if self.started is None and self.monitor.assigned:
                self.started = time.perf_counter()
                self.cpu_started = time.process_time()
            readings = self.monitor.metrics.totals()["readings"]
            if not ready_sent and self.started is not None and readings >= self.ready_after:
                self.conn.send(("ready", readings))
                ready_sent = True
            while self.conn.poll():
                _, self.target = self.conn.recv()
            if self.target is not None and readings >= self.target:
                self.stop.set()
                return
            time.sleep(WATCH_INTERVAL_S)


def _serve(
    settings: Settings,
    model_dir: str,
    ready_after: int,
    target: int | None,
    max_runtime_s: float,
    conn: Connection,
) -> None:
    """The monitor process: load the model, run the monitor from the start, report."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        from streamae import artifact
        from streamae.monitor.service import Monitor

        monitor = Monitor(settings, artifact.load(model_dir), from_beginning=True)
        watch = _Watch(monitor, conn, ready_after, target)
        thread = threading.Thread(target=watch.run, name="bench-watch", daemon=True)
        thread.start()
        monitor.run(watch.stop, max_runtime_s)
        finished, cpu = time.perf_counter(), time.process_time()
        watch.stop.set()
        thread.join()
        totals = monitor.metrics.totals()
        conn.send(
            (
                "done",
                {
                    "readings": int(totals["readings"]),
                    "windows": int(totals["windows"]),
                    "seconds": finished - (watch.started or finished),
                    "cpu_seconds": cpu - watch.cpu_started,
                    "complete": watch.target is not None and totals["readings"] >= watch.target,
                    "peak_rss_bytes": peak_rss_bytes(),
                },
            )
        )
    except BaseException as exc:  # reported to the parent, which raises it there
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
