"""The sensors a monitor keeps state for: where they live, what changed, which ones idle.

The pipeline holds each sensor's windows, threshold and alert tracker; the
``SensorBook`` holds what the monitor needs around it: the partition of the
sensor's readings (its state is written to the same partition number), its
newest reading time, the sensors changed since the last checkpoint, and the
evicted ones whose state must be deleted (a tombstone). Memory is bounded:
at most ``max_sensors`` sensors (``room``), and sensors idle for longer than
``idle_sensor_timeout_s`` of reading time — measured against the newest
reading of their partition — are evicted, unless an alert of theirs is open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streamae.config import Settings
from streamae.exceptions import StreamaeError
from streamae.messages import Alert
from streamae.monitor.intake import Decoded
from streamae.monitor.metrics import MonitorMetrics
from streamae.monitor.state import StateRecord, encode_chunk, encode_state, memory_key
from streamae.pipeline import Output, Pipeline

log = logging.getLogger(__name__)

#: ``send(topic, key, value, partition)``, as the delivery strategies provide it.
Send = Callable[[str, bytes, bytes | None, int], None]


@dataclass
class Tracked:
    """What the monitor keeps per sensor besides its pipeline state."""

    partition: int  # where its readings (and so its state) live
    newest_ts: int  # its newest reading, in reading time


class SensorBook:
    """Per-sensor bookkeeping around ``pipeline`` (see the module docstring)."""

    def __init__(self, settings: Settings, pipeline: Pipeline, metrics: MonitorMetrics) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.metrics = metrics
        self.sensors: dict[str, Tracked] = {}
        self.alerting: set[str] = set()  # sensors with an open alert
        self._watermark: dict[int, int] = {}  # partition → newest reading time seen
        # Since the last checkpoint: sensors changed; records to delete (tombstones), by
        # partition: evicted sensors, and memory chunks and records no sensor uses there.
        self._dirty: set[str] = set()
        self._evicted: dict[str, int] = {}
        self._stale: dict[bytes, int] = {}

    def room(self) -> int:
        """How many new sensors may still be added."""
        return max(0, self.settings.max_sensors - len(self.sensors))

    def processed(self, decoded: Decoded, output: Output) -> None:
        """Note the readings the pipeline took and the alerts it raised."""
        rejected = {index for index, _ in output.rejected}
        for index, (reading, record) in enumerate(
            zip(decoded.readings, decoded.origins, strict=True)
        ):
            if index in rejected:
                continue
            sensor, ts, partition = reading.sensor_id, reading.ts_ms, record.partition
            tracked = self.sensors.get(sensor)
            if tracked is None:
                self.sensors[sensor] = Tracked(partition, ts)
            else:
                if tracked.partition != partition:
                    self._moved(sensor, tracked.partition)
                    tracked.partition = partition
                tracked.newest_ts = max(tracked.newest_ts, ts)
            self._dirty.add(sensor)
            if ts > self._watermark.get(partition, ts - 1):
                self._watermark[partition] = ts
        self.alerted(output.alerts)

    def alerted(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            if alert.state == "open":
                self.alerting.add(alert.sensor_id)
            else:
                self.alerting.discard(alert.sensor_id)
        self._gauges()

    def touch_all(self) -> None:
        """Mark every sensor changed (e.g. readings held for reordering were released)."""
        self._dirty.update(self.sensors)

    def write_state(self, send: Send) -> None:
        """Send a tombstone for every evicted sensor and unused memory chunk, then the
        state of every changed sensor.

        A sensor's new memory chunks go before its record, and the tombstones of the
        chunks it no longer holds after it. A checkpoint cut short can leave a chunk
        newer than the record (its extra codes are ignored; when it no longer holds the
        oldest codes the record needs, the memory starts again) or a chunk missing (the
        memory starts again): never a wrong memory.
        """
        topic = self.settings.state_topic
        # Deletions first: a chunk number a restored sensor's new memory could not use may
        # be written again below, by that new memory. An evicted sensor's chunks go before
        # its record: cut short, a checkpoint leaves no chunk without a record.
        for key, partition in self._stale.items():
            send(topic, key, None, partition)
        for sensor, partition in self._evicted.items():
            send(topic, sensor.encode(), None, partition)
        sent = 0
        for sensor in self._dirty:
            tracked = self.sensors.get(sensor)
            if tracked is None:
                continue
            chunks, dropped = self.pipeline.memory_changes(sensor)
            for number, chunk in chunks.items():
                send(topic, memory_key(sensor, number), encode_chunk(chunk), tracked.partition)
            record = encode_state(tracked.newest_ts, self.pipeline.snapshot(sensor))
            send(topic, sensor.encode(), record, tracked.partition)
            for number in dropped:
                send(topic, memory_key(sensor, number), None, tracked.partition)
            sent += len(chunks) + 1 + len(dropped)
        self.metrics.state_records.inc(sent + len(self._evicted) + len(self._stale))
        self.discard_changes()

    def discard_changes(self) -> None:
        self._dirty.clear()
        self._evicted.clear()
        self._stale.clear()

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget the sensors of ``partitions`` (moved to another monitor, or rewound)."""
        for partition in partitions:
            self._watermark.pop(partition, None)
        # Their state is now another monitor's to write, tombstones included.
        self._evicted = {s: p for s, p in self._evicted.items() if p not in partitions}
        self._stale = {k: p for k, p in self._stale.items() if p not in partitions}
        return self.forget([s for s, t in self.sensors.items() if t.partition in partitions])

    def clear(self) -> None:
        """Forget every sensor and every change (before reloading the last checkpoint)."""
        self.drop_partitions(set(self._watermark) | {t.partition for t in self.sensors.values()})
        self.discard_changes()

    def forget(self, sensors: Iterable[str]) -> int:
        """Drop the state of ``sensors``; they are restored or start afresh if they come back."""
        sensors = list(sensors)
        if sensors:
            self.pipeline.forget(sensors)
            for sensor in sensors:
                self.sensors.pop(sensor, None)
                self.alerting.discard(sensor)
                self._dirty.discard(sensor)
            self._gauges()
        return len(sensors)

    def _moved(self, sensor: str, old: int) -> None:
        """The sensor's readings (so its state) moved from partition ``old`` (e.g. the topic
        got more partitions): delete its records there; the next checkpoint writes them all
        to the new one."""
        self._stale[sensor.encode()] = old
        for number in self.pipeline.memory_moved(sensor):
            self._stale[memory_key(sensor, number)] = old

    def restore(
        self,
        states: dict[str, tuple[int, StateRecord]],
        orphans: dict[bytes, int] | None = None,
        between: Callable[[], bool] = lambda: True,
    ) -> int:
        """Restore sensors from their state records; return how many were usable. The
        ``orphans`` (memory chunks without a usable record) are deleted at the next
        checkpoint. ``between`` is called before each sensor but the first; once it
        returns False the rest are left out (their partition went to another monitor)."""
        self._stale.update(orphans or {})
        restored = 0
        for i, (sensor, (partition, record)) in enumerate(states.items()):
            if i and not between():
                break
            try:
                self.pipeline.restore(sensor, record.pipeline, record.memory)
            except (StreamaeError, LookupError, TypeError, ValueError) as exc:
                log.warning("sensor %s: state not restorable (%s); starting fresh", sensor, exc)
                self.pipeline.forget([sensor])
                self._drop_chunks(sensor, record.memory, partition)
                continue
            self._drop_chunks(sensor, record.memory, partition)
            self.sensors[sensor] = Tracked(partition, record.newest_ts)
            alerts = record.pipeline.get("alerts")
            if isinstance(alerts, dict) and alerts.get("is_open"):
                self.alerting.add(sensor)
            if record.newest_ts > self._watermark.get(partition, record.newest_ts - 1):
                self._watermark[partition] = record.newest_ts
            restored += 1
        self._gauges()
        if len(self.sensors) > self.settings.max_sensors:
            log.warning(
                "keeping %d sensors, over max_sensors (%d): new sensors are refused",
                len(self.sensors),
                self.settings.max_sensors,
            )
        return restored

    def _drop_chunks(self, sensor: str, chunks: Iterable[int], partition: int) -> None:
        """Delete at the next checkpoint the memory chunks of ``sensor`` it does not use."""
        for number in set(chunks) - set(self.pipeline.memory_stored(sensor)):
            self._stale[memory_key(sensor, number)] = partition

    def evict_idle(self) -> int:
        """Evict the sensors idle (in reading time) for longer than ``idle_sensor_timeout_s``."""
        timeout_ms = self.settings.idle_sensor_timeout_s * 1000
        idle = {
            sensor: tracked.partition
            for sensor, tracked in self.sensors.items()
            if self._watermark.get(tracked.partition, 0) - tracked.newest_ts > timeout_ms
            and sensor not in self.alerting  # so that its alert can still close
        }
        if idle:
            for sensor, partition in idle.items():
                for number in self.pipeline.memory_stored(sensor):
                    self._stale[memory_key(sensor, number)] = partition
            self.forget(idle)
            self._evicted.update(idle)
            self.metrics.evicted.inc(len(idle))
            log.info(
                "evicted %d sensor(s) idle for over %g s of reading time",
                len(idle),
                self.settings.idle_sensor_timeout_s,
            )
        return len(idle)

    def _gauges(self) -> None:
        self.metrics.sensors.set(len(self.sensors))
        self.metrics.open_alerts.set(len(self.alerting))
