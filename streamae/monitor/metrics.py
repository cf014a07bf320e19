"""Prometheus metrics and the periodic one-line summary of a running monitor.

Each ``MonitorMetrics`` has its own ``CollectorRegistry`` (not prometheus_client's
global one), so several monitors can run in one process, as the tests do.

>>> metrics = MonitorMetrics()
>>> metrics.readings.inc(3)
>>> metrics.totals()["readings"]
3.0
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from streamae.exceptions import ConfigError

log = logging.getLogger(__name__)

# Prometheus scrapes from elsewhere (and from outside a container), so listen on
# every interface, as exporters conventionally do.
METRICS_ADDRESS = "0.0.0.0"
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 50_000)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class MonitorMetrics:
    """The monitor's counters, histograms and gauges, and the summary log line."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.readings = Counter(
            "streamae_readings_consumed", "Reading records consumed", registry=reg
        )
        self.windows = Counter("streamae_windows_scored", "Windows scored", registry=reg)
        self.alerts_opened = Counter("streamae_alerts_opened", "Alerts opened", registry=reg)
        self.alerts_closed = Counter("streamae_alerts_closed", "Alerts closed", registry=reg)
        self.dead_letters = Counter(
            "streamae_dead_lettered", "Records sent to the dead-letter topic", registry=reg
        )
        self.batch_size = Histogram(
            "streamae_batch_records", "Records per poll", buckets=BATCH_BUCKETS, registry=reg
        )
        self.latency = Histogram(
            "streamae_score_latency_seconds",
            "Reading record timestamp to the checkpoint that made its score durable",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.lag = Gauge(
            "streamae_consumer_lag",
            "Records behind the end of the assigned partitions",
            registry=reg,
        )
        self.open_alerts = Gauge("streamae_open_alerts", "Alerts open right now", registry=reg)
        self.sensors = Gauge(
            "streamae_sensors", "Sensors whose state this monitor keeps", registry=reg
        )
        self.dropped = Counter(
            "streamae_readings_dropped",
            "Readings the windows dropped: duplicate or older than the sensor's last one",
            ["reason"],
            registry=reg,
        )
        self.state_records = Counter(
            "streamae_state_records", "Sensor state records written (tombstones too)", registry=reg
        )
        self.restored = Counter(
            "streamae_sensors_restored", "Sensors restored from the state topic", registry=reg
        )
        self.evicted = Counter(
            "streamae_sensors_evicted", "Idle sensors whose state was dropped", registry=reg
        )
        self.rewinds = Counter(
            "streamae_rewinds",
            "Batches not committed and replayed from the last committed offsets",
            registry=reg,
        )
        self._server = None
        self._last_summary = (time.monotonic(), self.totals())

    def serve(self, port: int) -> None:
        """Expose ``/metrics`` over HTTP on ``port`` (0: do not)."""
        if port == 0:
            return
        try:
            self._server, _ = start_http_server(port, METRICS_ADDRESS, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on port {port} ({exc.strerror}); choose another "
                "--metrics-port, or 0 to switch the endpoint off"
            ) from exc
        log.info("metrics on http://%s:%d/metrics", METRICS_ADDRESS, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def totals(self) -> dict[str, float]:
        """Current counter values, by short name."""
        counters = {
            "readings": self.readings,
            "windows": self.windows,
            "opened": self.alerts_opened,
            "closed": self.alerts_closed,
            "dead_letters": self.dead_letters,
            "restored": self.restored,
            "evicted": self.evicted,
            "rewinds": self.rewinds,
            "state_records": self.state_records,
        }
        return {name: _value(counter) for name, counter in counters.items()}

    def summary(self) -> str:
        """One line of rates since the previous call, e.g. for a periodic log."""
        now, totals = time.monotonic(), self.totals()
        then, before = self._last_summary
        self._last_summary = (now, totals)
        elapsed = max(now - then, 1e-9)
        return (
            f"{(totals['readings'] - before['readings']) / elapsed:.1f} readings/s, "
            f"{(totals['windows'] - before['windows']) / elapsed:.1f} windows/s, "
            f"{_gauge(self.open_alerts):.0f} open alerts, lag {_gauge(self.lag):.0f}, "
            f"{totals['dead_letters'] - before['dead_letters']:.0f} dead-lettered "
            f"({totals['dead_letters']:.0f} in total)"
        )


def _value(counter: Counter) -> float:
    return next(s.value for s in counter.collect()[0].samples if s.name.endswith("_total"))


def _gauge(gauge: Gauge) -> float:
    return gauge.collect()[0].samples[0].value
