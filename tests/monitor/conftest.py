"""Helpers for the monitor's integration tests: produce, read back, run monitors."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka import errors as kerr

from streamae.config import Secret, Settings
from streamae.kafka.clients import make_admin, make_consumer, make_producer
from streamae.messages import Reading, encode_reading
from streamae.monitor.service import Monitor

from .scenario import DetectorSpec


class KafkaIO:
    """Produce to and read back from the test's topics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def create_topic(self, topic: str, partitions: int, **configs: str) -> None:
        """Create ``topic`` unless it exists."""
        admin = make_admin(self.settings)
        try:
            if topic in admin.list_topics():
                return
            spec = {"num_partitions": partitions, "replication_factor": -1, "configs": configs}
            admin.create_topics({topic: spec})
            admin.wait_for_topics([topic])
        finally:
            admin.close()

    def produce(
        self, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]], **overrides
    ) -> int:
        """Send ``(key, value)`` pairs in order; return how many."""
        producer = make_producer(self.settings, **overrides)
        count = 0
        try:
            for key, value in messages:
                producer.send(topic, key=key, value=value)
                count += 1
            producer.flush()
        finally:
            producer.close()
        return count

    def produce_readings(self, readings: Iterable[Reading], partitions: int = 4) -> int:
        """Send ``readings`` keyed by sensor (creating the topic with ``partitions`` if needed)."""
        self.create_topic(self.settings.readings_topic, partitions)
        return self.produce(
            self.settings.readings_topic,
            ((r.sensor_id.encode(), encode_reading(r)) for r in readings),
        )

    def feed_readings(self, readings: list[Reading], chunk: int, pause_s: float) -> None:
        """Send ``readings`` ``chunk`` at a time with a pause in between, like a live feed."""
        producer = make_producer(self.settings)
        try:
            for start in range(0, len(readings), chunk):
                for r in readings[start : start + chunk]:
                    producer.send(
                        self.settings.readings_topic,
                        key=r.sensor_id.encode(),
                        value=encode_reading(r),
                    )
                producer.flush()
                time.sleep(pause_s)
        finally:
            producer.close()

    def read(self, topic: str, timeout_s: float = 30.0, *, committed: bool = False) -> list:
        """Every record now in ``topic``, in partition then offset order.

        ``committed``: only records of committed transactions (read_committed).
        """
        isolation = "read_committed" if committed else "read_uncommitted"
        consumer = make_consumer(self.settings, isolation_level=isolation, max_poll_records=5000)
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            if not tps:  # not created yet
                return []
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            records: list = []
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                assert time.monotonic() < deadline, f"timed out reading {topic}"
                for part in consumer.poll(timeout_ms=500).values():
                    records.extend(part)
        finally:
            consumer.close()
        return sorted(records, key=lambda r: (r.partition, r.offset))

    def lag(self, group: str, topic: str) -> int:
        """Records of ``topic`` that ``group`` has not committed yet."""
        admin = make_admin(self.settings)
        consumer = make_consumer(self.settings)
        try:
            try:
                committed = admin.list_group_offsets({group: None}).get(group, {})
            except kerr.KafkaError as exc:
                if not exc.retriable:  # e.g. the offsets topic is still being created
                    raise
                committed = {}
            parts = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        finally:
            admin.close()
            consumer.close()
        done = {tp: meta.offset for tp, meta in committed.items() if tp.topic == topic}
        return sum(end - max(done.get(tp, 0), 0) for tp, end in ends.items())

    def wait_consumed(self, group: str, topic: str, timeout_s: float = 120.0, alive=None) -> None:
        """Wait until ``group`` has committed every record of ``topic``."""
        deadline = time.monotonic() + timeout_s
        while (lag := self.lag(group, topic)) > 0:
            if alive is not None:
                alive()
            assert time.monotonic() < deadline, f"group {group} still {lag} records behind"
            time.sleep(0.3)


@pytest.fixture
def monitor_settings(kafka_settings: Settings, caplog: pytest.LogCaptureFixture) -> Settings:
    """The test's Kafka settings with a group of its own and no metrics endpoint.

    The monitor's INFO log is captured, so a failing test shows what it did.
    """
    caplog.set_level(logging.INFO, logger="streamae")
    caplog.set_level(logging.INFO, logger="kafka.coordinator")
    return kafka_settings.replace(group_id=f"monitor-{uuid.uuid4().hex[:8]}", metrics_port=0)


@pytest.fixture
def kio(monitor_settings: Settings) -> KafkaIO:
    return KafkaIO(monitor_settings)


@contextmanager
def monitor_thread(settings: Settings, detectors, **options) -> Iterator[Monitor]:
    """A monitor running in a thread of this process; stopped (cleanly) on exit."""
    monitor = Monitor(settings, detectors, from_beginning=True, **options)
    stop = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            monitor.run(stop)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, name="monitor", daemon=True)
    thread.start()
    try:
        yield monitor
    except BaseException as exc:
        if failures:  # say why the monitor stopped working, not only what the test saw
            raise AssertionError(f"the monitor thread failed: {failures[0]!r}") from exc
        raise
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "the monitor did not stop within 60 s"
    if failures:
        raise failures[0]


def settings_env(settings: Settings) -> dict[str, str]:
    """STREAMAE_* variables that make a subprocess use ``settings``."""
    env = {}
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if isinstance(value, Secret):
            value = value.get()
        env[Settings.env_var(field.name)] = str(value)
    return env


ZSCORE_MONITOR = Path(__file__).with_name("zscore_monitor.py")


class MonitorProcess:
    """A monitor as a child process (``command``), its stderr in a file."""

    def __init__(
        self, command: list[str], settings: Settings, log_path: Path, unset: Iterable[str] = ()
    ) -> None:
        """``unset``: settings whose variables are left out, for a ``--config`` to set."""
        self.log_path = log_path
        left_out = {Settings.env_var(name) for name in unset}
        env = {
            k: v for k, v in {**os.environ, **settings_env(settings)}.items() if k not in left_out
        }
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        code = self.process.poll()
        assert code is None, f"monitor exited with {code}:\n{self.log()[-3000:]}"

    def wait_for(self, predicate: Callable[[str], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.log()):
            self.check_alive()
            assert time.monotonic() < deadline, f"monitor log never matched:\n{self.log()[-3000:]}"
            time.sleep(0.2)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL: no chance to publish, flush or commit anything."""
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def monitor_processes(tmp_path: Path) -> Iterator[Callable[..., MonitorProcess]]:
    """Start monitor subprocesses: with ``spec`` the z-score detectors, else ``--model``.

    Any still running at the end of the test are killed.
    """
    started: list[MonitorProcess] = []

    def start(
        settings: Settings,
        *args: str,
        spec: DetectorSpec | None = None,
        model_dir: Path | None = None,
        unset: Iterable[str] = (),
    ) -> MonitorProcess:
        if spec is not None:
            command = [sys.executable, str(ZSCORE_MONITOR), spec.to_json(), "monitor"]
        else:
            command = [sys.executable, "-m", "streamae", "monitor", "--model", str(model_dir)]
        command += ["--from-beginning", "--metrics-port", "0", *args]
        proc = MonitorProcess(command, settings, tmp_path / f"monitor-{len(started)}.log", unset)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.kill()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Tiny conv autoencoders (window 8) trained in seconds: {channels: model folder}."""
    from streamae import artifact
    from streamae.simulate import simulate
    from streamae.training import TrainConfig, train_detector

    folders = {}
    for channels in (3, 1):
        normal = simulate(sensors=2, readings_per_sensor=400, channels=channels, seed=1)
        config = TrainConfig(
            arch="conv", window=8, hidden=8, latent=2, epochs=2, max_windows=500, device="cpu"
        )
        detector = train_detector(normal.series, config, progress=False)
        folders[channels] = artifact.save(detector, tmp_path_factory.mktemp(f"model-{channels}ch"))
    return folders
