"""Monitors as separate processes: a consumer group of two, and a kill -9 mid-stream."""

from __future__ import annotations

import re
import threading
import time

import pytest

from streamae.messages import decode_alert, decode_score

from .conftest import monitor_thread
from .scenario import ALERT_SETTINGS, DetectorSpec, match_alerts, spike_run

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SPEC = DetectorSpec()
ASSIGNED = re.compile(r"partitions (assigned|revoked): (.*)")
STOPPED = re.compile(r"monitor stopped: (\d+) readings consumed, (\d+) windows scored")


def assignment(log: str) -> set[int] | None:
    """The partitions the log's latest rebalance gave it (None while it has none settled)."""
    events = ASSIGNED.findall(log)
    if not events or events[-1][0] != "assigned":
        return None
    return {int(name.rsplit("-", 1)[1]) for name in events[-1][1].split(", ") if name != "(none)"}


def stopped_totals(log: str) -> tuple[int, int]:
    found = STOPPED.findall(log)
    assert found, f"no final summary in the log:\n{log[-2000:]}"
    return int(found[-1][0]), int(found[-1][1])


def test_two_monitors_split_the_partitions_and_emit_the_alerts_of_one(
    monitor_settings, kio, monitor_processes
):
    settings = monitor_settings.replace(**ALERT_SETTINGS)
    run = spike_run(SPEC, streamed=2000)
    kio.create_topic(settings.readings_topic, 4)
    first = monitor_processes(settings, spec=SPEC)
    second = monitor_processes(settings, spec=SPEC)

    def settled() -> bool:
        mine, theirs = assignment(first.log()), assignment(second.log())
        return bool(mine and theirs and not mine & theirs and mine | theirs == {0, 1, 2, 3})

    deadline = time.monotonic() + 90
    while not settled():
        first.check_alive()
        second.check_alive()
        assert time.monotonic() < deadline, "the group never settled on two members"
        time.sleep(0.2)
    kio.produce_readings(run.readings)
    kio.wait_consumed(settings.group_id, settings.readings_topic, alive=first.check_alive)
    split = assignment(first.log()), assignment(second.log())
    assert first.stop() == 0 and second.stop() == 0  # SIGTERM: a clean exit
    pair = [decode_alert(r.value) for r in kio.read(settings.alerts_topic)]
    windows = [stopped_totals(p.log())[1] for p in (first, second)]

    alone = settings.replace(
        group_id=settings.group_id + "-alone",
        scores_topic=settings.scores_topic + "-alone",
        alerts_topic=settings.alerts_topic + "-alone",
        state_topic=settings.state_topic + "-alone",
    )
    with monitor_thread(alone, SPEC.registry()):
        kio.wait_consumed(alone.group_id, alone.readings_topic)
    single = [decode_alert(r.value) for r in kio.read(alone.alerts_topic)]
    print(
        f"\ntwo monitors: partitions {sorted(split[0])} + {sorted(split[1])}, windows scored "
        f"{windows[0]} + {windows[1]}, {len(pair)} alert events; one monitor: {len(single)}"
    )
    assert all(windows), "each monitor scores the sensors of its partitions"
    assert sum(windows) == SPEC.sensors * (2000 - SPEC.window + 1)
    assert {(a.alert_id, a.state) for a in pair} == {(a.alert_id, a.state) for a in single}
    assert len(pair) == len(single) > 0


def test_kill_9_mid_stream_then_restart_still_alerts_every_event(
    monitor_settings, kio, monitor_processes
):
    settings = monitor_settings.replace(**ALERT_SETTINGS)
    run = spike_run(SPEC, streamed=2000)
    kio.create_topic(settings.readings_topic, 4)
    first = monitor_processes(settings, spec=SPEC)
    fed = threading.Event()
    feed_errors: list[BaseException] = []

    def feed() -> None:
        # At a steady pace in the background, so that the kill lands mid-stream.
        try:
            kio.feed_readings(run.readings, chunk=250, pause_s=0.25)
        except BaseException as exc:
            feed_errors.append(exc)
        fed.set()

    first.wait_for(lambda log: "partitions assigned: readings" in log, timeout_s=120)
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    deadline = time.monotonic() + 180
    while len(kio.read(settings.scores_topic)) < len(run.readings) // 4:
        first.check_alive()
        assert not feed_errors, feed_errors
        assert time.monotonic() < deadline, f"the monitor never got going:\n{first.log()[-3000:]}"
        time.sleep(1)
    first.kill()
    assert not fed.is_set(), "the stream ended before the kill: nothing was in flight"
    scored_before = len(kio.read(settings.scores_topic))
    second = monitor_processes(settings, spec=SPEC)
    feeder.join(120)
    assert not feed_errors, feed_errors
    kio.wait_consumed(settings.group_id, settings.readings_topic, alive=second.check_alive)
    assert second.stop() == 0

    alerts = [decode_alert(r.value) for r in kio.read(settings.alerts_topic)]
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic)]
    per_event, unmatched = match_alerts(alerts, run.events)
    opened = [a for a in alerts if a.state == "open"]
    same_id = len(opened) - len({a.alert_id for a in opened})
    events_twice = sum(1 for got in per_event.values() if len({a.alert_id for a in got}) > 1)
    windows = {(s.sensor_id, s.ts) for s in scores}
    all_windows = SPEC.sensors * (2000 - SPEC.window + 1)
    print(
        f"\nkill -9 after {scored_before} scores published, then a restart: "
        f"{len(run.expected)} events expected, "
        f"{sum(1 for e in run.expected if run.events.index(e) in per_event)} alerted; "
        f"{len(opened)} alert openings, {same_id} duplicate alert messages (same alert_id), "
        f"{events_twice} events alerted under two ids; {len(scores)} scores for "
        f"{len(windows)} distinct windows of {all_windows} "
        f"({len(scores) - len(windows)} duplicates replayed)"
    )
    for event in run.expected:
        assert run.events.index(event) in per_event, f"no alert for {event}"
    assert unmatched == []
    # The restarted monitor restores every sensor's window from the state topic:
    # no window is lost to refilling it.
    assert len(windows) == all_windows
