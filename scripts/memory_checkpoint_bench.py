#!/usr/bin/env python3
"""What the sensor memory costs the state topic: bytes, checkpoint and restore time.

Gives SENSORS sensors a full memory (4096 codes joined and 2000 waiting, latent 16:
the shipped profile's sizes), writes their state to a local broker's state topic
as a monitor's checkpoint does, times a steady checkpoint (one new code each) and
a restore, first alone, then by a monitor in its consumer group (the group drops a
member that does not poll for 60 s: one with thousands of such sensors restores
for longer and must stay). Starts its own Kafka broker in a temporary folder
(127.0.0.1 only). Run with the project's venv:

    .venv/bin/python scripts/memory_checkpoint_bench.py --sensors 200
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from streamae.config import Settings
from streamae.detectors.base import Detector
from streamae.kafka.broker import LocalBroker, free_port
from streamae.kafka.clients import ensure_topics, make_consumer, make_producer
from streamae.messages import Reading, encode_reading
from streamae.monitor.metrics import MonitorMetrics
from streamae.monitor.sensors import SensorBook, Tracked
from streamae.monitor.service import Monitor
from streamae.monitor.state import StateReader
from streamae.pipeline import Pipeline
from streamae.tables import SensorSeries
from streamae.training import TrainConfig, train_detector

PARTITIONS = 4
CODES = 4096 + 2000  # the profile's sensor_memory, and sensor_memory_delay codes waiting


def model() -> Detector:
    """A conv autoencoder of the profile's sizes (its weights do not matter here)."""
    rng = np.random.default_rng(0)
    ts = np.arange(600, dtype=np.int64) * 1000
    series = SensorSeries("train", ts, rng.standard_normal((600, 1)), ("value",), None, None)
    config = TrainConfig(arch="conv", window=32, hidden=64, latent=16, epochs=1, device="cpu")
    return train_detector([series], config, progress=False)


def full_monitor(settings: Settings, detector: Detector, sensors: list[str]) -> SensorBook:
    pipeline = Pipeline(settings, detector)
    rng = np.random.default_rng(1)
    pipeline.process(
        [
            Reading(s, t * 1000, {"value": float(rng.standard_normal())})
            for t in range(32)
            for s in sensors
        ]
    )
    book = SensorBook(settings, pipeline, MonitorMetrics())
    codes = torch.randn(CODES, 16)
    for i, sensor in enumerate(sensors):
        # Filled directly: scoring 6,100 windows per sensor to get there would take minutes.
        memory = pipeline._sensors[sensor].memory
        for code in codes:
            memory.add(code, True)
        book.sensors[sensor] = Tracked(i % PARTITIONS, 31_000)
    book.touch_all()
    return book


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=200, help="sensors (default: 200)")
    count = parser.parse_args().sensors
    if count < 1:
        parser.error("--sensors must be at least 1")
    sensors = [f"sensor-{i:05d}" for i in range(count)]
    detector = model()
    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalBroker(Path(tmp) / "kafka", port=free_port())
        print("starting a local Kafka broker", flush=True)
        broker.start()
        try:
            settings = Settings(
                bootstrap_servers=broker.bootstrap,
                state_topic="memory-checkpoint-bench",
                sensor_memory=4096,
                sensor_memory_delay=2000,
            )
            ensure_topics(settings, {settings.state_topic: PARTITIONS})
            book = full_monitor(settings, detector, sensors)
            producer = make_producer(settings)
            sizes: list[int] = []

            def send(topic: str, key: bytes, value: bytes | None, partition: int) -> None:
                sizes.append(len(value or b""))
                producer.send(topic, key=key, value=value, partition=partition)

            started = time.perf_counter()
            book.write_state(send)
            producer.flush()
            print(
                f"full checkpoint: {len(sizes)} records, {sum(sizes) / 1e6:.1f} MB for "
                f"{count} sensors, {time.perf_counter() - started:.1f} s"
            )
            for sensor in sensors:
                book.pipeline._sensors[sensor].memory.add(torch.randn(16), True)
            book.touch_all()
            sizes.clear()
            started = time.perf_counter()
            book.write_state(send)
            producer.flush()
            print(
                f"steady checkpoint (one new code per sensor): {len(sizes)} records, "
                f"{sum(sizes) / count / 1e3:.1f} kB and "
                f"{1e3 * (time.perf_counter() - started) / count:.2f} ms per sensor"
            )
            producer.close()
            restored = SensorBook(settings, Pipeline(settings, detector), MonitorMetrics())
            consumer = make_consumer(settings, group_id=None, max_poll_records=5000)
            started = time.perf_counter()
            stored = StateReader(settings, consumer, settle_s=10).read(range(PARTITIONS))
            read_s = time.perf_counter() - started
            done = restored.restore(*stored)
            total_s = time.perf_counter() - started
            consumer.close()
            same = all(
                torch.equal(
                    restored.pipeline._sensors[s].memory.items(),
                    book.pipeline._sensors[s].memory.items(),
                )
                for s in sensors
            )
            print(
                f"restore: {done} sensors in {total_s:.1f} s ({read_s:.1f} s reading), "
                f"{1e3 * total_s / count:.0f} ms per sensor; every memory as written: {same}"
            )
            restore_in_group(settings, detector, sensors)
        finally:
            broker.stop()


class Assignments(logging.Handler):
    """Counts the partition assignments a monitor logs."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += record.getMessage().startswith("partitions assigned")


def restore_in_group(settings: Settings, detector: Detector, sensors: list[str]) -> None:
    """A monitor joins a group, restores every sensor, then scores one new reading each."""
    settings = settings.replace(
        readings_topic="memory-checkpoint-bench-readings",
        group_id="memory-checkpoint-bench",
        metrics_port=0,
    )
    ensure_topics(settings, {settings.readings_topic: PARTITIONS})
    producer = make_producer(settings)
    for i, sensor in enumerate(sensors):
        reading = Reading(sensor, 32_000, {"value": 0.0})  # the window's next reading
        producer.send(
            settings.readings_topic,
            key=sensor.encode(),
            value=encode_reading(reading),
            partition=i % PARTITIONS,  # where its state is
        )
    producer.flush()
    producer.close()
    assignments = Assignments()
    logging.getLogger("streamae.monitor.rebalance").addHandler(assignments)
    logging.getLogger("streamae.monitor.rebalance").setLevel(logging.INFO)
    monitor = Monitor(settings, detector, from_beginning=True)
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            monitor.run(stop)
        except BaseException as exc:  # raised again below, on the main thread
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    started = time.perf_counter()
    thread.start()
    deadline = started + 120 + len(sensors)  # far over the ~11 ms a sensor takes
    while monitor.metrics.totals()["windows"] < len(sensors) and thread.is_alive():
        if time.perf_counter() > deadline:
            break
        time.sleep(0.2)
    took = time.perf_counter() - started
    totals = monitor.metrics.totals()
    stop.set()
    thread.join(60)
    if failed:
        raise failed[0]
    print(
        f"restore by a monitor in its group: {totals['restored']:.0f} sensors restored and "
        f"{totals['windows']:.0f} windows scored after it in {took:.1f} s; partitions "
        f"assigned {assignments.count} time(s) (1: it stayed in its group)"
    )


if __name__ == "__main__":
    main()
