"""One benchmark run: every phase in order, on one machine, against one broker.

Phases (see ``streamae.bench``): model ceiling → naive baseline → load the
readings → consume ceiling → monitor throughput → latency at half that rate →
memory per sensor. Without ``bootstrap_servers`` a ``LocalBroker`` is started in a
temporary folder on free ports and stopped at the end; either way the run's
topics are deleted at the end.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamae import artifact
from streamae.bench import data, memory, model, topics
from streamae.bench.monitor import MonitorGroup
from streamae.config import Settings
from streamae.detectors.base import Detector
from streamae.exceptions import ConfigError, StreamaeError
from streamae.kafka.broker import LocalBroker, free_port
from streamae.kafka.clients import wait_until_reachable
from streamae.messages import decode_reading

log = logging.getLogger(__name__)

# The paced sender sleeps only when the next reading is due further ahead than this.
PACE_SLICE_S = 0.002

#: The keys every result has (``--json`` prints them on its last line).
KEYS = (
    "model_ceiling_windows_per_s",
    "model_ceiling_c8_windows_per_s",
    "consume_ceiling_readings_per_s",
    "monitor_readings_per_s",
    "naive_windows_per_s",
    "monitor_over_model",
    "monitor_over_consume",
    "monitor_over_naive",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "rss_bytes_per_sensor",
    "state_bytes_per_sensor_channel",
    "monitor_peak_rss_bytes",
)


@dataclass(frozen=True)
class BenchConfig:
    """What one run measures, and how long each phase may take."""

    readings: int = 500_000
    sensors: int = 1_000
    window: int = 64
    channels: int = 1
    wide_channels: int = 8
    batch: int = 1024
    ceiling_s: float = 5.0
    naive_windows: int = 2_000
    naive_max_s: float = 30.0
    latency_s: float = 25.0
    latency_warmup_s: float = 2.0
    memory_sensors: int = 10_000
    phase_timeout_s: float = 900.0
    #: Monitor processes in the group; 0 = one per core (each scoring with one thread).
    instances: int = 0

    @classmethod
    def quick(cls) -> BenchConfig:
        """A smoke-test run: every phase, tiny sizes, a few seconds each."""
        return cls(
            readings=6_000,
            sensors=40,
            ceiling_s=0.5,
            naive_windows=40,
            naive_max_s=5.0,
            latency_s=3.0,
            latency_warmup_s=0.5,
            memory_sensors=300,
            phase_timeout_s=180.0,
        )

    @property
    def per_sensor(self) -> int:
        return self.readings // self.sensors

    def check(self) -> None:
        if self.sensors <= 0 or self.per_sensor < self.window:
            raise ConfigError(
                f"{self.readings} readings over {self.sensors} sensors give "
                f"{self.per_sensor} per sensor; each needs at least the window ({self.window}) "
                "to be scored: give more --readings or fewer --sensors"
            )


def run_bench(
    config: BenchConfig, bootstrap_servers: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run every phase; return the figures (at least ``KEYS``)."""
    config.check()
    if bootstrap_servers:
        _check_local(bootstrap_servers)
        # Before minutes of model phases, not after them.
        wait_until_reachable(Settings.load(bootstrap_servers=bootstrap_servers), timeout_s=10.0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    torch.set_num_threads(cores)
    # One per core, but never more than the readings partitions (the rest would idle).
    instances = config.instances or min(cores, Settings().readings_partitions)
    result: dict[str, Any] = {
        "readings": config.per_sensor * config.sensors,
        "sensors": config.sensors,
        "window": config.window,
        "channels": config.channels,
        "cpus": cores,
        # The figures move with the host: the LSTM's speed with its vector units.
        "cpu_model": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "monitor_instances": instances,
        "monitor_torch_threads": max(1, cores // instances),
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory(prefix="streamae-bench-") as tmp:
        model_dir = _models_and_naive(config, Path(tmp), result)
        with _broker(bootstrap_servers, Path(tmp)) as bootstrap:
            base = Settings.load(
                bootstrap_servers=bootstrap,
                metrics_port=0,
                torch_threads=result["monitor_torch_threads"],
            )
            _throughput(config, _fresh(base, config), model_dir, progress, result)
            _latency(config, _fresh(base, config), model_dir, result)
        _memory(config, model_dir, result)
    result["load_average_end"] = round(os.getloadavg()[0], 2)
    return result


def _cpu_model() -> str:
    """The processor's name as Linux reports it; empty where it does not."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine so far, in ticks; None off Linux."""
    try:
        with open("/proc/stat", encoding="utf-8") as stat:
            # user nice system idle iowait irq softirq steal; guest time is in user.
            ticks = [int(field) for field in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + waiting for I/O
    return sum(ticks) - idle, sum(ticks)


def _busy_since(start: tuple[int, int] | None) -> float | None:
    """The machine's busy share of its CPU time since ``start`` (``_cpu_times()``)."""
    end = _cpu_times()
    if start is None or end is None or end[1] <= start[1]:
        return None
    return (end[0] - start[0]) / (end[1] - start[1])


def _models_and_naive(config: BenchConfig, tmp: Path, result: dict[str, Any]) -> str:
    """Phase a (model ceilings, C and wide C) and the naive baseline; saves the C model."""
    log.info("bench: training the default-architecture models (1 epoch each)")
    narrow = data.bench_model(config.window, config.channels)
    wide = data.bench_model(config.window, config.wide_channels)
    result["model"] = {"arch": narrow.arch, **narrow.hyperparameters}
    model_dir = str(artifact.save(narrow, tmp / "model"))
    wide_dir = str(artifact.save(wide, tmp / "model-c8"))
    log.info("bench: model ceiling, batch %d", config.batch)
    _ceiling(config, narrow, model_dir, "model_ceiling", result)
    _ceiling(config, wide, wide_dir, "model_ceiling_c8", result)
    log.info("bench: naive baseline (one window per forward pass)")
    series = data.bench_series(min(config.sensors, 50), config.window * 4, config.channels)
    windows = data.sample_windows(series, config.window, config.naive_windows)
    rate, scored = model.naive(narrow, windows, config.naive_max_s)
    result["naive_windows_per_s"], result["naive_windows"] = rate, scored
    # What monitor_over_naive could reach if reading and publishing cost nothing.
    result["model_ceiling_over_naive"] = result["model_ceiling_windows_per_s"] / rate
    return model_dir


def _ceiling(
    config: BenchConfig, detector: Detector, model_dir: str, name: str, result: dict
) -> None:
    """``{name}_windows_per_s``: the better of two ways to use every core, all threads
    in this process or the monitor group's processes and threads (one one-thread
    process per core, at most one per readings partition); each way's figure is kept
    too, and the better per CPU-second."""
    threads, threads_cpu = model.ceiling(detector, config.batch, config.ceiling_s)
    processes, processes_cpu = model.ceiling_group(
        model_dir,
        result["monitor_instances"],
        result["monitor_torch_threads"],
        config.batch,
        config.ceiling_s,
    )
    result[f"{name}_threads_windows_per_s"] = threads
    result[f"{name}_processes_windows_per_s"] = processes
    result[f"{name}_windows_per_s"] = max(threads, processes)
    result[f"{name}_windows_per_cpu_s"] = max(threads_cpu, processes_cpu)


def _throughput(
    config: BenchConfig, settings: Settings, model_dir: str, progress: bool, result: dict
) -> None:
    """Phases b and c: load N readings, read them back bare, then run the monitor over them."""
    series = data.bench_series(config.sensors, config.per_sensor, config.channels)
    messages = data.messages(series)
    del series
    try:
        topics.create_topics(settings)
        log.info("bench: loading %d readings into %s", len(messages), settings.readings_topic)
        loader = topics.Loader(settings)
        try:
            started = time.perf_counter()
            loader.send_all(messages, progress)
            result["load_readings_per_s"] = len(messages) / (time.perf_counter() - started)
        finally:
            loader.close()
        log.info("bench: consume ceiling (read + decode, no scoring)")
        rate, cpu_rate, _ = topics.consume_rate(settings, len(messages), config.phase_timeout_s)
        result["consume_ceiling_readings_per_s"] = rate
        result["consume_ceiling_readings_per_cpu_s"] = cpu_rate
        log.info(
            "bench: monitor over %d readings (stride 1), %d instance(s)",
            len(messages),
            result["monitor_instances"],
        )
        with _monitors(config, settings, model_dir, result) as monitors:
            # Sustained: from the moment the group settled (the first instance may
            # have consumed alone, then paused for the rebalance the others caused).
            settled_at, before = monitors.wait_settled(
                settings.readings_partitions, config.phase_timeout_s, enough=len(messages)
            )
            monitors.wait_consumed(len(messages), config.phase_timeout_s)
            stats = monitors.stop()
        committed = topics.committed_readings(settings)
    finally:
        topics.delete_topics(settings)
    read = stats["read"]  # each reading once, however often a replay read it again
    if before <= read / 2:
        clock = "settled"
        monitor_rate = (read - before) / (stats["finished"] - settled_at)
    else:  # a small run, mostly consumed before the group settled: the whole span
        clock = "first assignment"
        monitor_rate = read / stats["seconds"]
    cpu_rate = read / max(stats["cpu_seconds"], 1e-9)
    expected_windows = config.sensors * (config.per_sensor - config.window + 1)
    result.update(
        monitor_readings_per_s=monitor_rate,
        monitor_windows=stats["windows"],
        # Every reading's results published and its offset committed (a rewind
        # scores the windows it replays again: at-least-once).
        monitor_committed=committed,
        monitor_complete=committed == len(messages) and stats["windows"] >= expected_windows,
        monitor_rewinds=stats["rewinds"],
        monitor_seconds=stats["seconds"],
        monitor_readings_before_settled=before,
        monitor_clock_from=clock,
        monitor_peak_rss_bytes=stats["peak_rss_bytes"],
        monitor_over_model=monitor_rate / result["model_ceiling_windows_per_s"],
        monitor_over_consume=monitor_rate / result["consume_ceiling_readings_per_s"],
        monitor_over_naive=monitor_rate / result["naive_windows_per_s"],
        # The same per second of CPU: what the work costs, however busy the machine was.
        monitor_readings_per_cpu_s=cpu_rate,
        monitor_over_model_cpu=cpu_rate / result["model_ceiling_windows_per_cpu_s"],
        monitor_over_consume_cpu=cpu_rate / result["consume_ceiling_readings_per_cpu_s"],
    )
    if not result["monitor_complete"]:
        log.warning(
            "bench: the monitor scored %d of %d windows and committed %d of %d readings "
            "within %.0f s",
            stats["windows"],
            expected_windows,
            committed,
            len(messages),
            config.phase_timeout_s,
        )


def _latency(config: BenchConfig, settings: Settings, model_dir: str, result: dict) -> None:
    """Phase d: offer half the sustained rate for ``latency_s``; produce → published, in ms.

    Every sensor's window is filled first (a backlog the monitor works off before
    the clock starts), so each paced reading completes a window.
    """
    rate = result["monitor_readings_per_s"] / 2
    fill = config.window - 1
    paced_per_sensor = math.ceil(
        rate * (config.latency_s + config.latency_warmup_s) / config.sensors
    )
    series = data.bench_series(config.sensors, fill + paced_per_sensor, config.channels, seed=2)
    messages = data.messages(series)
    del series
    backlog = fill * config.sensors
    sent: dict[tuple[str, int], int] = {}
    try:
        topics.create_topics(settings)
        loader = topics.Loader(settings, bulk=False)
        try:
            for key, value in messages[:backlog]:
                loader.send(key, value)
            loader.flush()
            with _monitors(config, settings, model_dir, result) as monitors:
                monitors.wait_consumed(backlog, config.phase_timeout_s)
                monitors.wait_settled(settings.readings_partitions, config.phase_timeout_s)
                log.info("bench: latency at %.0f readings/s for %.0f s", rate, config.latency_s)
                cpu = _cpu_times()
                paced = _paced(loader, messages[backlog:], rate, config.latency_warmup_s, sent)
                # Whether the tail is a queue: how full the cores were (all processes).
                result["latency_cpu_busy"] = _busy_since(cpu)
                loader.flush()
                monitors.wait_consumed(backlog + paced, config.phase_timeout_s)
                monitors.stop()
        finally:
            loader.close()
        latencies = topics.score_latencies(settings, sent)
    finally:
        topics.delete_topics(settings)
    if not len(latencies):
        raise StreamaeError("the latency phase saw no scores for the readings it sent")
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    result.update(
        latency_offered_readings_per_s=rate,
        latency_samples=len(latencies),
        latency_p50_ms=float(p50),
        latency_p95_ms=float(p95),
        latency_p99_ms=float(p99),
        latency_max_ms=float(latencies.max()),
    )


def _monitors(
    config: BenchConfig, settings: Settings, model_dir: str, result: dict
) -> MonitorGroup:
    """The run's monitor group (``result["monitor_instances"]`` processes)."""
    return MonitorGroup(
        settings,
        model_dir,
        instances=result["monitor_instances"],
        max_runtime_s=config.phase_timeout_s,
    )


def _paced(
    loader: topics.Loader,
    messages: list[data.Message],
    rate: float,
    warmup_s: float,
    sent: dict[tuple[str, int], int],
) -> int:
    """Send ``messages`` at ``rate``/s; note the produce time of those after the warm-up."""
    readings = [decode_reading(value) for _, value in messages]
    start = time.perf_counter()
    for index, ((key, value), reading) in enumerate(zip(messages, readings, strict=True)):
        due = start + index / rate
        wait = due - time.perf_counter()
        if wait > PACE_SLICE_S:
            time.sleep(wait)
        stamp = loader.send(key, value)
        if due - start >= warmup_s:
            sent[reading.sensor_id, reading.ts_ms] = stamp
    return len(messages)


def _memory(config: BenchConfig, model_dir: str, result: dict) -> None:
    """Phase e: state per sensor with ``memory_sensors`` sensors, in a fresh process.

    ``state_bytes_per_sensor_channel`` counts live allocations; the RSS figures add
    the heap's slack (see ``streamae.bench.memory``).
    """
    log.info("bench: memory with %d sensors", config.memory_sensors)
    stats = memory.state_growth(model_dir, config.memory_sensors, config.phase_timeout_s)
    result.update(
        memory_sensors=stats["sensors"],
        rss_bytes_per_sensor=stats["rss_bytes_per_sensor"],
        rss_beyond_window_bytes_per_sensor_channel=stats[
            "rss_beyond_window_bytes_per_sensor_channel"
        ],
        state_bytes_per_sensor=stats["state_bytes_per_sensor"],
        window_buffer_bytes=stats["window_buffer_bytes"],
        state_bytes_per_sensor_channel=stats["state_bytes_per_sensor_channel"],
        memory_peak_rss_bytes=stats["peak_rss_bytes"],
    )


def _fresh(base: Settings, config: BenchConfig) -> Settings:
    """Settings with topics and a group of their own, stride 1 and the benchmark's window."""
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    return base.replace(
        readings_topic=f"{tag}-readings",
        scores_topic=f"{tag}-scores",
        alerts_topic=f"{tag}-alerts",
        dead_letter_topic=f"{tag}-dead-letter",
        state_topic=f"{tag}-state",
        group_id=f"{tag}-monitor",
        window_size=config.window,
        stride=1,
    )


@contextmanager
def _broker(bootstrap_servers: str | None, tmp: Path) -> Iterator[str]:
    """The given bootstrap servers, or a LocalBroker of this run (stopped at the end)."""
    if bootstrap_servers:
        yield bootstrap_servers
        return
    # The controller port is chosen by the broker, apart from the client port.
    broker = LocalBroker(tmp / "kafka", port=free_port())
    log.info("bench: starting a local Kafka broker")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def _check_local(bootstrap_servers: str) -> None:
    """The benchmark floods its broker: refuse anything but this machine."""
    for server in bootstrap_servers.split(","):
        host = server.strip().rpartition(":")[0].strip("[]")
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            raise ConfigError(
                f"bench loads its broker hard and only targets this machine; {server.strip()!r} "
                "is not a loopback address (use 127.0.0.1:PORT, or leave --bootstrap-servers "
                "out to start a broker of its own)"
            )
