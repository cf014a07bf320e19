"""The simulator: reproducible, labelled, realistic enough to be worth detecting."""

from __future__ import annotations

import numpy as np
import pytest

from streamae.exceptions import ConfigError
from streamae.messages import decode_reading, encode_reading
from streamae.simulate import ANOMALY_KINDS, Simulator, max_anomaly_rate, simulate

GAP = 192


def stack(series):
    return np.concatenate([s.values for s in series])


def test_same_seed_same_data_other_seed_other_data():
    first = simulate(sensors=3, readings_per_sensor=2000, anomaly_rate=0.05, seed=3)
    again = simulate(sensors=3, readings_per_sensor=2000, anomaly_rate=0.05, seed=3)
    other = simulate(sensors=3, readings_per_sensor=2000, anomaly_rate=0.05, seed=4)
    np.testing.assert_array_equal(stack(first.series), stack(again.series))
    np.testing.assert_array_equal(
        np.concatenate([s.labels for s in first.series]),
        np.concatenate([s.labels for s in again.series]),
    )
    assert first.events == again.events and first.events
    assert not np.allclose(stack(first.series), stack(other.series))
    assert first.events != other.events


def test_slices_chunks_and_longer_runs_agree_with_the_whole_series():
    simulator = Simulator(4, 5000, rate=40.0, anomaly_rate=0.05, seed=9)
    whole = simulator.series(2)
    part = simulator.block(2, 1234, 4321)  # crosses a noise block and some events
    np.testing.assert_array_equal(part.values, whole.values[1234:4321])
    np.testing.assert_array_equal(part.labels, whole.labels[1234:4321])
    np.testing.assert_array_equal(part.ts_ms, whole.ts_ms[1234:4321])
    chunked = np.concatenate([chunk[2].values for chunk in simulator.chunks(readings=1000)])
    np.testing.assert_array_equal(chunked, whole.values)
    # A longer run with more sensors has the same sensor, normal readings and events, and
    # more events after the shorter run's last one.
    bigger = Simulator(6, 8000, rate=60.0, anomaly_rate=0.05, seed=9)
    longer = bigger.series(2)
    normal = (longer.labels[:5000] == 0) & (whole.labels == 0)
    np.testing.assert_array_equal(longer.values[:5000][normal], whole.values[normal])

    def spans(simulator, stop):
        return [
            (e.kind, e.start, e.stop, e.channels)
            for e in simulator.events
            if e.sensor_id == "sensor-002" and e.stop <= stop
        ]

    assert spans(bigger, 5000) == spans(simulator, 5000)
    assert len(spans(bigger, 8000)) > len(spans(simulator, 5000)) > 0


def test_labels_cover_exactly_the_separated_events():
    data = simulate(sensors=8, readings_per_sensor=6000, anomaly_rate=0.08, seed=5, min_gap=GAP)
    assert {e.kind for e in data.events} == set(ANOMALY_KINDS)
    for series in data.series:
        events = sorted(
            (e for e in data.events if e.sensor_id == series.sensor_id), key=lambda e: e.start
        )
        expected = np.zeros(len(series), dtype=np.int8)
        for event in events:
            expected[event.start : event.stop] = 1
            assert series.ts_ms[event.start] == event.start_ts
            assert series.ts_ms[event.stop - 1] == event.end_ts
            assert 10 <= event.stop - event.start <= 400
        np.testing.assert_array_equal(series.labels, expected)
        starts = [0] + [e.stop for e in events]
        gaps = [e.start - before for e, before in zip(events, starts, strict=False)]
        assert all(gap >= GAP for gap in gaps)


def test_anomaly_rate_is_the_expected_labelled_fraction():
    for rate in (0.01, 0.05, 0.15):
        data = simulate(sensors=10, readings_per_sensor=20_000, anomaly_rate=rate, seed=1)
        labelled = np.concatenate([s.labels for s in data.series]).mean()
        assert rate * 0.7 < labelled < rate * 1.3


def test_anomaly_rate_zero_is_normal_only():
    data = simulate(sensors=5, readings_per_sensor=3000, anomaly_rate=0.0, seed=2)
    assert data.events == []
    assert all(not s.labels.any() for s in data.series)


def test_anomalies_change_the_labelled_readings_and_nothing_else():
    dirty = simulate(sensors=6, readings_per_sensor=5000, anomaly_rate=0.08, seed=8)
    clean = simulate(sensors=6, readings_per_sensor=5000, anomaly_rate=0.0, seed=8)
    for d, c in zip(dirty.series, clean.series, strict=True):
        changed = (d.values != c.values).any(axis=1)
        assert not changed[d.labels == 0].any()
    for event in dirty.events:
        i = int(event.sensor_id.removeprefix("sensor-"))
        changed = (dirty.series[i].values != clean.series[i].values).any(axis=1)
        assert changed[event.start] and changed[event.stop - 1], event
        if event.kind != "spike":  # spikes leave the readings between them alone
            assert changed[event.start : event.stop].mean() > 0.9, event


def _kind_events(kind):
    simulator = Simulator(4, 6000, rate=10.0, anomaly_rate=0.05, seed=11, kinds=[kind])
    clean = Simulator(4, 6000, rate=10.0, anomaly_rate=0.0, seed=11)
    events = simulator.events
    assert len(events) >= 3 and {e.kind for e in events} == {kind}
    for event in events:
        i = simulator.sensor_ids.index(event.sensor_id)
        dirty_values = simulator.series(i).values
        clean_values = clean.series(i).values
        cols = [simulator.channels.index(c) for c in event.channels]
        span = slice(event.start, event.stop)
        yield simulator, i, event, span, cols, dirty_values, clean_values


def test_spike_is_far_out():
    for _, _, _, span, cols, dirty, clean in _kind_events("spike"):
        z = (dirty[span, cols] - clean[:, cols].mean(0)) / clean[:, cols].std(0)
        assert (np.abs(z).max(axis=0) > 4).all()


def test_level_shift_is_a_constant_offset_of_a_few_sigma():
    for _, _, _, span, cols, dirty, clean in _kind_events("level_shift"):
        offset = dirty[span, cols] - clean[span, cols]
        assert np.ptp(offset, axis=0).max() < 1e-3  # constant, up to rounding
        assert (np.abs(offset[0]) > 2.5 * clean[:, cols].std(0)).all()


def test_stuck_is_a_flat_line_at_the_last_good_value():
    for _, _, event, span, cols, dirty, clean in _kind_events("stuck"):
        flat = dirty[span, cols]
        assert (np.ptp(flat, axis=0) == 0).all()
        np.testing.assert_array_equal(flat[0], clean[event.start - 1, cols])
        assert (clean[span, cols].std(axis=0) > 0).all()


def test_noise_burst_adds_noise_of_about_a_sigma_or_more():
    for _, _, _, span, cols, dirty, clean in _kind_events("noise_burst"):
        extra = dirty[span, cols] - clean[span, cols]
        assert (extra.std(axis=0) > 0.7 * clean[:, cols].std(0)).all()


def test_frequency_change_changes_the_fast_cycle_frequency():
    for simulator, i, event, span, _, dirty, clean in _kind_events("frequency_change"):
        model = simulator.models[i]
        t = np.arange(event.start, event.stop)
        normal_cycle = model.cycle(t)[:, 0]
        # What is left of channel 0 once the normal signal without its fast cycle is removed.
        changed_cycle = dirty[span, 0] - (clean[span, 0] - normal_cycle)

        def crossings(x):
            return np.count_nonzero(np.diff(np.sign(x)) != 0)

        ratio = crossings(changed_cycle) / crossings(normal_cycle)
        assert ratio > 1.5 or ratio < 0.7, (event, ratio)
        assert event.channels == simulator.channels


def test_drift_ramps_away_to_a_few_sigma():
    for _, _, _, span, cols, dirty, clean in _kind_events("drift"):
        away = np.abs(dirty[span, cols] - clean[span, cols])
        assert (away[-1] > 2.5 * clean[:, cols].std(0)).all()
        assert (away[0] < 0.1 * away[-1]).all()
        ramp = np.arange(len(away))
        assert all(np.corrcoef(ramp, away[:, k])[0, 1] > 0.99 for k in range(len(cols)))


def test_channels_of_a_sensor_are_correlated_and_sensors_differ():
    data = simulate(sensors=4, readings_per_sensor=4000, channels=4, seed=6)
    for series in data.series:
        corr = np.corrcoef(series.values.T)
        pairs = np.abs(corr[np.triu_indices(4, k=1)])
        assert pairs.mean() > 0.3
    first, second = data.series[0].values, data.series[1].values
    assert not np.allclose(first.mean(0), second.mean(0), rtol=0.01)
    assert abs(np.corrcoef(first[:, 0], second[:, 0])[0, 1]) < 0.9
    assert data.series[0].channels == ("temperature", "pressure", "vibration", "current")


def test_timestamps_pace_each_sensor_and_interleave_the_sensors():
    start = 1_700_000_000_000
    simulator = Simulator(4, 100, rate=400.0, seed=1, start_ms=start)
    readings = list(simulator.readings())
    assert len(readings) == simulator.total == 400
    assert [r.ts_ms for r in readings] == sorted(r.ts_ms for r in readings)
    assert readings[0].ts_ms == start and readings[1].sensor_id == "sensor-001"
    mine = [r.ts_ms for r in readings if r.sensor_id == "sensor-003"]
    assert set(np.diff(mine)) == {10}  # 400 readings/s over 4 sensors: one per 10 ms each


def test_readings_carry_labels_and_survive_the_wire():
    data = simulate(sensors=2, readings_per_sensor=3000, anomaly_rate=0.05, seed=4)
    readings = data.readings()
    assert len(readings) == 6000
    assert sum(r.label for r in readings) == sum(int(s.labels.sum()) for s in data.series) > 0
    for reading in readings[:50] + [r for r in readings if r.label][:50]:
        assert decode_reading(encode_reading(reading)) == reading


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sensors": 2, "readings_per_sensor": 10, "rate": 5000.0}, "per sensor"),
        ({"sensors": 0, "readings_per_sensor": 10}, "sensors must be >= 1"),
        ({"sensors": 1, "readings_per_sensor": 10, "channels": 0}, "channels must be"),
        ({"sensors": 1, "readings_per_sensor": 10, "anomaly_rate": 0.9}, "at most"),
        ({"sensors": 1, "readings_per_sensor": 10, "kinds": ["meteor"]}, "meteor"),
        ({"sensors": 1, "readings_per_sensor": 10, "seed": -1}, "seed"),
        ({"sensors": 1, "readings_per_sensor": 10, "start_ms": 5_000_000_000_000}, "2100"),
        ({"sensors": 10, "duration_s": 0.5, "rate": 10.0}, "less than one reading"),
        ({"sensors": 1, "duration_s": 1e308}, "does not fit the timestamps"),
        ({"sensors": 1}, "either"),
    ],
)
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        simulate(**options)


def test_max_anomaly_rate_leaves_the_gaps():
    assert 0 < max_anomaly_rate(["spike"], GAP) < max_anomaly_rate(["drift"], GAP) < 1
