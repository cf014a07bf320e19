import json
import re

import numpy as np
import pytest

from streamae.config import Settings
from streamae.detectors.zscore import ZScoreDetector
from streamae.exceptions import ConfigError, ModelError
from streamae.messages import Reading
from streamae.pipeline import DetectorRegistry, Output, Pipeline

CHANNELS = ("pressure", "temperature")


def detector(window: int = 8, tail: int | None = 2, channels=CHANNELS) -> ZScoreDetector:
    """Standard-normal channels: a window's score is about 1 on normal data."""
    rng = np.random.default_rng(42)
    normal = np.square(rng.standard_normal((500, tail or window))).mean(axis=1)
    zeros = np.zeros(len(channels))
    return ZScoreDetector(channels, window, zeros, zeros + 1.0, normal, tail=tail)


def settings(**changes) -> Settings:
    base = dict(window_size=8, alert_open_after=2, alert_close_after=3, threshold_window=300)
    return Settings(**(base | changes))


def stream(sensors=3, length=400, seed=0, bursts=((150, 40), (300, 10))) -> list[Reading]:
    """Interleaved multi-sensor readings: noise, with bursts of +8 in every channel."""
    rng = np.random.default_rng(seed)
    readings = []
    for step in range(length):
        for s in range(sensors):
            values = rng.standard_normal(len(CHANNELS))
            if any(start + 5 * s <= step < start + 5 * s + size for start, size in bursts):
                values += 8.0
            names = CHANNELS if (step + s) % 2 else CHANNELS[::-1]  # dict order must not matter
            by_name = dict(zip(CHANNELS, values.tolist(), strict=True))
            readings.append(
                Reading(f"sensor-{s}", 1_000 * step, {n: by_name[n] for n in names}, step % 2)
            )
    return readings


def run_in_chunks(pipeline: Pipeline, readings, sizes) -> Output:
    total = Output()
    start = 0
    for size in sizes:
        out = pipeline.process(readings[start : start + size])
        total.scores += out.scores
        total.alerts += out.alerts
        total.rejected += [(start + i, reason) for i, reason in out.rejected]
        start += size
    assert start >= len(readings)
    flushed = pipeline.flush()
    total.scores += flushed.scores
    total.alerts += flushed.alerts
    return total


@pytest.mark.parametrize(
    "changes",
    [{}, {"stride": 3}, {"threshold_policy": "quantile", "threshold_quantile": 0.99}],
)
def test_batches_give_exactly_the_results_of_one_reading_at_a_time(changes):
    readings = stream()
    one = run_in_chunks(Pipeline(settings(**changes), detector()), readings, [1] * len(readings))
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 700, size=len(readings)).tolist()
    batched = run_in_chunks(Pipeline(settings(**changes), detector()), readings, sizes)
    whole = run_in_chunks(Pipeline(settings(**changes), detector()), readings, [len(readings)])
    assert len(one.scores) > 300
    assert [a.state for a in one.alerts].count("open") >= 6  # both bursts, three sensors
    assert batched.scores == one.scores and whole.scores == one.scores
    assert batched.alerts == one.alerts and whole.alerts == one.alerts


def test_out_of_order_readings_within_tolerance_give_the_in_order_results():
    readings = stream(sensors=2, length=200)
    shuffled = list(readings)
    for i in range(0, len(shuffled) - 6, 6):  # swap neighbours: 3 s apart at most
        shuffled[i], shuffled[i + 4] = shuffled[i + 4], shuffled[i]
    in_order = run_in_chunks(Pipeline(settings(), detector()), readings, [len(readings)])
    tolerant = Pipeline(settings(reorder_tolerance_ms=5_000), detector())
    reordered = run_in_chunks(tolerant, shuffled, [7] * (len(shuffled) // 7 + 1))
    # Each sensor's results are the same; sensors interleave in release order.
    for sensor in ("sensor-0", "sensor-1"):
        assert [s for s in reordered.scores if s.sensor_id == sensor] == [
            s for s in in_order.scores if s.sensor_id == sensor
        ]
        assert [a for a in reordered.alerts if a.sensor_id == sensor] == [
            a for a in in_order.alerts if a.sensor_id == sensor
        ]
    assert len(reordered.scores) == len(in_order.scores)


def test_a_long_anomaly_stays_flagged_to_its_end():
    readings = stream(sensors=1, length=1200, bursts=((300, 700),))
    out = Pipeline(settings(threshold_window=100), detector()).process(readings)
    during = [s for s in out.scores if 300 * 1000 <= s.ts < 1000 * 1000]
    assert all(s.score > s.threshold for s in during)
    assert len({s.threshold for s in during}) == 1  # the bar never moved
    assert [(a.state, a.opened_at, a.closed_at) for a in out.alerts] == [
        ("open", 300_000, None),
        ("closed", 300_000, 1_003_000),  # 3 windows after the 2-reading tail left the burst
    ]


def test_scores_carry_the_completing_reading_and_per_channel_errors():
    readings = stream(sensors=1, length=10)
    out = Pipeline(settings(), detector()).process(readings)
    assert [s.ts for s in out.scores] == [r.ts_ms for r in readings[7:]]
    first = out.scores[0]
    assert first.values == {c: readings[7].values[c] for c in CHANNELS}
    assert list(first.values) == list(CHANNELS)  # model channel order
    assert list(first.channel_errors) == list(CHANNELS)
    assert first.score == pytest.approx(np.mean(list(first.channel_errors.values())))
    assert first.label == readings[7].label
    assert first.model_version == detector().version
    assert not first.is_anomaly


def test_channel_mismatch_is_rejected_and_the_other_readings_are_still_scored():
    readings = stream(sensors=2, length=12)
    readings.insert(5, Reading("sensor-0", 999_999, {"pressure": 1.0, "flow": 2.0}))
    readings.insert(9, Reading("sensor-9", 5, {"pressure": 1.0}))
    out = Pipeline(settings(), detector()).process(readings)
    assert out.rejected == [
        (5, "channels {flow, pressure} do not match the model's {pressure, temperature}"),
        (9, "channels {pressure} do not match the model's {pressure, temperature}"),
    ]
    assert {s.sensor_id for s in out.scores} == {"sensor-0", "sensor-1"}
    assert len(out.scores) == 2 * (12 - 7)


def test_a_reading_with_a_non_finite_value_is_rejected_and_leaves_the_window_clean():
    readings = stream(sensors=1, length=40, bursts=())
    readings[20] = Reading(
        "sensor-0", readings[20].ts_ms, {"pressure": float("nan"), "temperature": 0.0}
    )
    readings[30] = Reading(
        "sensor-0", readings[30].ts_ms, {"pressure": 0.0, "temperature": float("inf")}
    )
    out = Pipeline(settings(), detector()).process(readings)
    assert out.rejected == [
        (20, "channel(s) pressure: not a finite number"),
        (30, "channel(s) temperature: not a finite number"),
    ]
    assert len(out.scores) == 40 - 2 - 7
    assert all(np.isfinite(s.score) for s in out.scores)
    assert not out.alerts


def test_routes_pick_the_detector_by_sensor_pattern_first_match_wins():
    default = detector()
    pumps = detector(window=4)
    valves = detector(window=4, tail=1)
    registry = DetectorRegistry(default, [("sensor-[01]", pumps), ("sensor-*", valves)])
    out = Pipeline(settings(), registry).process(stream(sensors=3, length=10))
    versions = {s.sensor_id: s.model_version for s in out.scores}
    assert versions == {
        "sensor-0": pumps.version,
        "sensor-1": pumps.version,
        "sensor-2": valves.version,
    }
    assert registry.for_sensor("other") is default
    counts = {sid: sum(s.sensor_id == sid for s in out.scores) for sid in versions}
    assert counts == {"sensor-0": 7, "sensor-1": 7, "sensor-2": 7}


def test_snapshot_and_restore_continue_exactly_where_the_stream_stopped():
    readings = stream(sensors=2, length=400)
    whole = run_in_chunks(Pipeline(settings(), detector()), readings, [len(readings)])
    cut = 2 * 160  # inside the first burst: an alert is open
    first = Pipeline(settings(), detector())
    out = first.process(readings[:cut])
    states = {sid: json.loads(json.dumps(first.snapshot(sid))) for sid in first.sensors()}
    assert any(s["alerts"]["is_open"] for s in states.values())
    second = Pipeline(settings(), detector())
    for sid, state in states.items():
        second.restore(sid, state)
    rest = run_in_chunks(second, readings[cut:], [len(readings) - cut])
    assert out.scores + rest.scores == whole.scores
    assert out.alerts + rest.alerts == whole.alerts


def test_restore_under_another_model_keeps_the_window_but_restarts_threshold_and_alerts():
    readings = stream(sensors=1, length=160)
    old = Pipeline(settings(), detector())
    old.process(readings)
    state = old.snapshot("sensor-0")
    new = Pipeline(settings(), detector(tail=3))
    new.restore("sensor-0", state)
    out = new.process([Reading("sensor-0", 10_000_000, {"pressure": 0.0, "temperature": 0.0})])
    assert len(out.scores) == 1  # the window was kept: the next reading completes one
    assert new.snapshot("sensor-0")["alerts"]["is_open"] is False


def test_forget_drops_sensor_state():
    pipeline = Pipeline(settings(), detector())
    pipeline.process(stream(sensors=3, length=5))
    assert pipeline.sensors() == ["sensor-0", "sensor-1", "sensor-2"]
    pipeline.forget(["sensor-1", "unknown"])
    assert pipeline.sensors() == ["sensor-0", "sensor-2"]
    out = pipeline.process(stream(sensors=3, length=8)[3 * 5 :])
    assert {s.sensor_id for s in out.scores} == {"sensor-0", "sensor-2"}


def test_duplicates_and_late_readings_are_counted_not_scored():
    readings = stream(sensors=1, length=10)
    pipeline = Pipeline(settings(), detector())
    out = pipeline.process(readings + [readings[-1], readings[2]])
    assert len(out.scores) == 3
    assert (pipeline.counts["duplicate"], pipeline.counts["late"]) == (1, 1)


def test_prime_fills_the_window_without_scoring():
    readings = stream(sensors=1, length=20)
    pipeline = Pipeline(settings(), detector())
    assert pipeline.prime(readings[:7]) == []
    out = pipeline.process(readings[7:])
    assert [s.ts for s in out.scores] == [r.ts_ms for r in readings[7:]]


def test_stride_larger_than_the_model_window_is_refused():
    with pytest.raises(ConfigError, match="stride 8 exceeds the window size 4"):
        Pipeline(settings(stride=8), detector(window=4))


def test_a_detector_without_normal_scores_is_refused():
    bare = ZScoreDetector(CHANNELS, 8, np.zeros(2), np.ones(2), np.empty(0))
    with pytest.raises(ModelError, match=r"model \S+ has 0 normal score\(s\); a threshold needs"):
        Pipeline(settings(), bare)


@pytest.fixture(scope="module")
def autoencoder():
    """A tiny, quickly trained autoencoder on the test stream's normal part."""
    from streamae.tables import SensorSeries
    from streamae.training import TrainConfig, train_detector

    rng = np.random.default_rng(9)
    ts = np.arange(600, dtype=np.int64) * 1000
    normal = SensorSeries("train", ts, rng.standard_normal((600, 2)), CHANNELS, None, None)
    config = TrainConfig(window=8, hidden=8, latent=4, epochs=2, max_windows=400, device="cpu")
    return train_detector([normal], config, progress=False)


def test_autoencoder_batches_give_exactly_the_results_of_one_reading_at_a_time(autoencoder):
    readings = stream(sensors=2, length=220)
    one = run_in_chunks(Pipeline(settings(), autoencoder), readings, [1] * len(readings))
    batched = run_in_chunks(Pipeline(settings(), autoencoder), readings, [2, 3, 50, 385])
    assert len(one.scores) == 2 * (220 - 7)
    assert one.alerts  # the bursts are found
    assert batched.scores == one.scores
    assert batched.alerts == one.alerts


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"sensor_memory_delay": 50},
        {"stride": 3},
        {"sensor_memory": 5, "sensor_memory_delay": 11},
    ],
)
def test_with_a_sensor_memory_batches_give_exactly_the_results_of_one_reading_at_a_time(
    autoencoder, changes
):
    readings = stream(sensors=2, length=220)
    remembering = settings(**({"sensor_memory": 64} | changes))
    one = run_in_chunks(Pipeline(remembering, autoencoder), readings, [1] * len(readings))
    batched = run_in_chunks(Pipeline(remembering, autoencoder), readings, [2, 3, 50, 385])
    whole = run_in_chunks(Pipeline(remembering, autoencoder), readings, [len(readings)])
    plain_settings = settings(stride=changes.get("stride", 1))
    plain = run_in_chunks(Pipeline(plain_settings, autoencoder), readings, [len(readings)])
    assert [s.score for s in one.scores] != [s.score for s in plain.scores]  # it remembers
    assert batched.scores == one.scores and whole.scores == one.scores
    assert batched.alerts == one.alerts and whole.alerts == one.alerts


def test_a_sensor_memory_learns_a_new_normal_pattern_and_bursts_still_open_alerts():
    from streamae.tables import SensorSeries
    from streamae.training import TrainConfig, train_detector

    rng = np.random.default_rng(0)

    def wave(amplitude: float, n: int) -> np.ndarray:
        return amplitude * np.sin(2 * np.pi * np.arange(n) / 16) + 0.05 * rng.standard_normal(n)

    ts = np.arange(800, dtype=np.int64) * 1000
    normal = SensorSeries("train", ts, wave(1.0, 800)[:, None], ("v",), None, None)
    config = TrainConfig(
        arch="conv", window=8, hidden=8, latent=4, epochs=10, max_windows=800, device="cpu"
    )
    model = train_detector([normal], config, progress=False)
    # The wave grows by half (new, but under this generous bar); two equal bursts of +8.
    values = wave(1.5, 400)
    values[200:210] += 8.0
    values[330:340] += 8.0
    readings = [Reading("s", 1_000 * i, {"v": float(v)}) for i, v in enumerate(values)]

    def run(memory: int) -> tuple[np.ndarray, list[int]]:
        generous = settings(
            threshold_policy="quantile", threshold_margin=50.0, sensor_memory=memory
        )
        out = Pipeline(generous, model).process(readings)
        opened = [a.opened_at // 1_000 for a in out.alerts if a.state == "open"]
        return np.array([s.score for s in out.scores]), opened

    plain, plain_opened = run(0)
    remembered, opened = run(400)
    later = np.r_[100:190, 230:320]  # windows (ending at row index + 7) clear of the bursts
    assert remembered[later].mean() < 0.5 * plain[later].mean()
    # Both bursts still open an alert (which windows are learned: the test after this one).
    # (The rolling bar learns the lower scores, so a burst may clear it a reading earlier.)
    assert [at // 10 for at in opened] == [at // 10 for at in plain_opened] == [20, 33]


@pytest.mark.parametrize("delay", [0, 40])
def test_a_sensor_memory_holds_exactly_the_windows_judged_normal_once_old_enough(
    autoencoder, delay
):
    readings = stream(sensors=1, length=300)  # bursts at 150-189 and 300-: flagged windows
    pipeline = Pipeline(settings(sensor_memory=1000, sensor_memory_delay=delay), autoencoder)
    scores = run_in_chunks(pipeline, readings, [37] * 9).scores
    normal = [s.score <= s.threshold and not s.is_anomaly for s in scores]
    assert 0 < normal.count(False) < len(normal)
    block = 8  # W / stride
    last_block_end = len(scores) // block * block
    due = sum(normal[i] for i in range(len(scores)) if i + max(delay, block) <= last_block_end)
    memory = pipeline._sensors["sensor-0"].memory  # the sensor's state, looked at directly
    assert memory is not None and memory.scored == len(scores)
    assert len(memory.items()) == due
    # Restored from its snapshot alone, without the chunks of codes, it starts empty.
    pipeline.restore("sensor-0", json.loads(json.dumps(pipeline.snapshot("sensor-0"))))
    assert pipeline._sensors["sensor-0"].memory.items() is None


def wire(value):
    """Through JSON, as the state topic carries it."""
    return json.loads(json.dumps(value), object_hook=lambda d: {_key(k): v for k, v in d.items()})


def _key(key: str):
    return int(key) if key.isdigit() else key


@pytest.mark.parametrize("cut", [93, 700])
def test_a_sensor_restored_with_its_memory_scores_exactly_as_an_uninterrupted_one(
    autoencoder, cut, caplog
):
    readings = stream(sensors=2, length=450)
    remembering = settings(sensor_memory=64, sensor_memory_delay=20)
    whole = run_in_chunks(Pipeline(remembering, autoencoder), readings, [len(readings)])
    first = Pipeline(remembering, autoencoder)
    head = run_in_chunks(first, readings[:cut], [37] * (cut // 37 + 1))
    saved = {
        s: (wire(first.snapshot(s)), wire(first.memory_changes(s)[0])) for s in first.sensors()
    }
    assert all(chunks for _, chunks in saved.values())

    def resumed(with_memory: bool) -> Output:
        pipeline = Pipeline(remembering, autoencoder)
        for sensor, (state, chunks) in saved.items():
            pipeline.restore(sensor, state, chunks if with_memory else None)
        return run_in_chunks(pipeline, readings[cut:], [len(readings) - cut])

    tail = resumed(True)
    assert head.scores + tail.scores == whole.scores
    assert head.alerts + tail.alerts == whole.alerts
    # Without its chunks the memory starts again, and the scores differ.
    assert head.scores + resumed(False).scores != whole.scores
    assert re.search(
        r"sensor memory not restorable \(chunk \d+ of its codes is missing", caplog.text
    )


def test_a_sensor_memory_with_a_detector_that_cannot_use_one_is_ignored_with_a_warning(caplog):
    readings = stream()
    out = Pipeline(settings(sensor_memory=64), detector()).process(readings)
    assert "sensor_memory is ignored" in caplog.text
    assert out.scores == Pipeline(settings(), detector()).process(readings).scores


def test_alert_fade_closes_an_alert_once_a_burst_faded_into_a_lasting_shift():
    # A +8 burst (scores ~65) that leaves the level shifted by +3 (scores ~10, over the bar).
    rng = np.random.default_rng(0)
    readings = []
    for step in range(600):
        values = rng.standard_normal(len(CHANNELS)) + (8.0 if 300 <= step < 340 else 0.0)
        values += 3.0 if step >= 340 else 0.0
        readings.append(
            Reading("s", 1_000 * step, dict(zip(CHANNELS, values.tolist(), strict=True)))
        )

    def alerts(fade: float) -> list[tuple]:
        pipeline = Pipeline(settings(alert_fade=fade, alert_rearm=1000), detector())
        return [(a.state, a.opened_at, a.closed_at) for a in pipeline.process(readings).alerts]

    # Without the fade the shifted level keeps it open until noise dips under the bar.
    assert alerts(0.0) == [("open", 300_000, None), ("closed", 300_000, 476_000)]
    # With it, 3 windows (alert_close_after) after the 2-reading tail left the burst;
    # the re-arm keeps the shifted level from opening another.
    assert alerts(0.25) == [("open", 300_000, None), ("closed", 300_000, 343_000)]


def test_alert_fade_outside_0_1_or_without_rearm_is_a_clear_setting_error():
    with pytest.raises(ConfigError, match="alert_fade"):
        settings(alert_fade=1.0, alert_rearm=10)
    with pytest.raises(ConfigError, match="needs 'alert_rearm' > 0"):
        settings(alert_fade=0.25)
