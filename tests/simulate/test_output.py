"""Simulated runs saved to files read back through streamae.tables."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from streamae.exceptions import ConfigError
from streamae.simulate import Simulator
from streamae.simulate.output import write_run
from streamae.tables import read_series, table_files


@pytest.fixture(scope="module")
def simulator():
    return Simulator(3, 1500, rate=30.0, channels=2, anomaly_rate=0.08, seed=12)


def assert_same(read, simulator):
    by_id = {s.sensor_id: s for s in read}
    assert sorted(by_id) == list(simulator.sensor_ids)
    for i, sensor_id in enumerate(simulator.sensor_ids):
        expected, got = simulator.series(i), by_id[sensor_id]
        assert got.channels == ("temperature", "pressure")  # the label is not a channel
        np.testing.assert_array_equal(got.ts_ms, expected.ts_ms)
        np.testing.assert_array_equal(got.values, expected.values)
        np.testing.assert_array_equal(got.labels, expected.labels)
    assert any(s.labels.any() for s in read)


@pytest.mark.parametrize("name", ["run.csv", "run.parquet"])
def test_one_file_round_trips_through_read_series(tmp_path, simulator, name):
    counted = []
    paths = write_run(simulator, tmp_path / "out" / name, progress=counted.append)
    assert paths == [tmp_path / "out" / name, tmp_path / "out" / "run.events.json"]
    assert sum(counted) == simulator.total
    assert_same(read_series(paths[0]), simulator)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)


def test_csv_columns_are_timestamp_first_sensor_channels_label(tmp_path, simulator):
    [path, _] = write_run(simulator, tmp_path / "run.csv")
    frame = pd.read_csv(path, nrows=4)
    assert list(frame.columns) == ["timestamp", "sensor_id", "temperature", "pressure", "label"]
    assert frame["timestamp"][0] == "2026-01-01T00:00:00.000Z"
    assert list(frame["sensor_id"][:4]) == ["sensor-000", "sensor-001", "sensor-002", "sensor-000"]


def test_folder_gets_one_file_per_sensor_named_after_it(tmp_path, simulator):
    paths = write_run(simulator, f"{tmp_path}/runs/")
    files = table_files(tmp_path / "runs")
    assert [f.name for f in files] == ["sensor-000.csv", "sensor-001.csv", "sensor-002.csv"]
    assert "sensor_id" not in pd.read_csv(files[0], nrows=1).columns
    assert_same([s for f in files for s in read_series(f)], simulator)
    assert paths[-1] == tmp_path / "runs" / "events.json"


def test_events_file_lists_the_events(tmp_path, simulator):
    [_, events_path] = write_run(simulator, tmp_path / "run.csv")
    events = json.loads(events_path.read_text())
    assert len(events) == len(simulator.events) > 0
    for saved, event in zip(events, simulator.events, strict=True):
        assert saved["sensor_id"] == event.sensor_id and saved["kind"] == event.kind
        assert (saved["start_ts"], saved["end_ts"]) == (event.start_ts, event.end_ts)
        assert saved["last_row"] - saved["first_row"] + 1 == event.stop - event.start


def test_same_options_write_identical_files(tmp_path):
    for name in ("a.csv", "b.csv"):
        write_run(Simulator(2, 800, rate=20.0, anomaly_rate=0.05, seed=3), tmp_path / name)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_unusable_output_paths_are_refused(tmp_path, simulator):
    with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
        write_run(simulator, tmp_path / "run.txt")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot write"):
        write_run(simulator, tmp_path / "file" / "run.csv")


@pytest.mark.parametrize("out", ["run.csv", "runs/"])
def test_a_users_events_file_is_never_replaced(tmp_path, simulator, out):
    events = tmp_path / ("run.events.json" if out == "run.csv" else "runs/events.json")
    events.parent.mkdir(exist_ok=True)
    events.write_text('{"mine": true}\n')
    with pytest.raises(ConfigError, match=f"{events}: exists and is not an events file"):
        write_run(simulator, f"{tmp_path}/{out}")
    assert events.read_text() == '{"mine": true}\n'
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [events]


def test_an_earlier_run_and_its_events_file_are_replaced(tmp_path, simulator):
    for out in (tmp_path / "run.csv", f"{tmp_path}/runs/"):
        first = write_run(simulator, out)
        assert write_run(simulator, out) == first


@pytest.mark.parametrize("name", ["run.csv", "run.events.json"])
def test_a_pipe_where_a_file_goes_is_left_as_it_is(tmp_path, simulator, name):
    pipe = tmp_path / name
    os.mkfifo(pipe)
    with pytest.raises(ConfigError, match=f"{pipe}: exists and is not a regular file"):
        write_run(simulator, tmp_path / "run.csv")
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == [name]
