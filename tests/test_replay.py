"""Replay: recorded files → readings (column rules, ordering) → the readings topic."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from streamae.cli import main
from streamae.exceptions import InputError
from streamae.kafka.clients import make_consumer
from streamae.messages import decode_reading
from streamae.replay import load_recording, produce


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def readings_of(path, **options):
    return [reading for _, reading in load_recording(path, **options).readings()]


def run_cli(*args, env=None):
    """The replay command in a fresh interpreter: exit code, stdout, stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "streamae", "replay", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    return result.returncode, result.stdout, result.stderr


def run_main(capsys, *args):
    """The replay command in this process (quicker): exit code, stdout, stderr."""
    try:
        code = main(["replay", *map(str, args)])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_labels_are_labels_changepoint_ignored_semicolons_detected(tmp_path):
    path = write(
        tmp_path / "rig.csv",
        "datetime;Pressure;Temperature;anomaly;changepoint\n"
        "2024-01-01 00:00:00;1.25;40.0;0.0;0.0\n"
        "2024-01-01 00:00:01;2.5;40.5;1.0;1.0\n",
    )
    first, second = readings_of(path)
    assert first.sensor_id == "rig"
    assert first.values == {"Pressure": 1.25, "Temperature": 40.0}
    assert (first.label, second.label) == (0, 1)
    assert second.ts_ms - first.ts_ms == 1000


def test_files_without_labels_send_no_label_and_sensor_id_overrides_the_name(tmp_path):
    path = write(tmp_path / "nyc_taxi.csv", "timestamp,value\n2014-07-01 00:00:00,10844\n")
    [reading] = readings_of(path, sensor_id="taxi")
    assert reading.sensor_id == "taxi" and reading.values == {"value": 10844.0}
    assert reading.label is None


def test_sensor_id_column_splits_rows_in_time_order(tmp_path):
    path = write(
        tmp_path / "many.csv",
        "timestamp,sensor_id,x,label\n3000,s2,30,0\n1000,s1,10,0\n2000,s2,20,1\n2000,s1,11,0\n",
    )
    got = [(r.sensor_id, r.ts_ms, r.values["x"], r.label) for r in readings_of(path)]
    # Ties in time go in the order the sensors first appear in the file.
    assert got == [
        ("s1", 1000, 10, 0),
        ("s2", 2000, 20, 1),
        ("s1", 2000, 11, 0),
        ("s2", 3000, 30, 0),
    ]


def test_columns_pick_channels_and_unknown_ones_are_refused(tmp_path):
    path = write(tmp_path / "f.csv", "timestamp,a,b,label\n1,1,2,0\n2,3,4,1\n")
    assert [r.values for r in readings_of(path, columns=["b"])] == [{"b": 2.0}, {"b": 4.0}]
    with pytest.raises(InputError, match="unknown column.*'label'"):
        load_recording(path, columns=["label"])


def test_rows_with_missing_values_are_left_out(tmp_path):
    path = write(tmp_path / "gaps.csv", "timestamp,a,b\n1,1,2\n2,,4\n3,5,6\n")
    recording = load_recording(path)
    assert recording.skipped_rows == 1
    assert [r.ts_ms for _, r in recording.readings()] == [1, 3]
    assert all(math.isfinite(v) for _, r in recording.readings() for v in r.values.values())


def test_folder_files_play_side_by_side_from_their_own_start(tmp_path):
    write(
        tmp_path / "d" / "early.csv", "timestamp,v\n2020-01-01 00:00:00,1\n2020-01-01 00:00:02,2\n"
    )
    write(
        tmp_path / "d" / "late.csv", "timestamp,v\n2021-06-01 00:00:01,3\n2021-06-01 00:00:03,4\n"
    )
    order = [
        (due, r.sensor_id, r.values["v"]) for due, r in load_recording(tmp_path / "d").readings()
    ]
    assert order == [(0, "early", 1), (0, "late", 3), (2000, "early", 2), (2000, "late", 4)]


def test_one_sensor_from_two_files_is_refused(tmp_path):
    write(tmp_path / "a" / "x.csv", "timestamp,v\n1,1\n")
    write(tmp_path / "b" / "x.csv", "timestamp,v\n1,1\n")
    with pytest.raises(InputError, match="'x' comes from both"):
        load_recording(tmp_path)
    assert len(load_recording(tmp_path / "a", sensor_id="one")) == 1
    with pytest.raises(InputError, match="--sensor-id"):
        load_recording(tmp_path, sensor_id="one")


def test_benchmark_files_replay(shared_data):
    skab = load_recording(shared_data / "SKAB" / "data" / "valve1" / "0.csv")
    [(_, first)] = [next(skab.readings())]
    assert first.sensor_id == "0" and len(first.values) == 8 and first.label == 0
    assert "anomaly" not in first.values and "changepoint" not in first.values
    assert sum(r.label for _, r in skab.readings()) > 0
    nab = load_recording(shared_data / "NAB" / "data" / "realKnownCause" / "nyc_taxi.csv")
    assert next(nab.readings())[1].values == {"value": 10844.0} and len(nab) == 10320


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nothing.csv"], "no such file"),
        (["{tmp}/bad.csv"], "not a UTF-8"),
        (["{tmp}/ok.csv", "--columns", "nope"], "unknown column"),
        (["{tmp}/ok.csv", "--speed", "-1"], "--speed"),
        (["{tmp}/ok.csv", "--speed", "fast"], "--speed"),
        (["{tmp}/ok.csv", "--limit", "0"], "--limit"),
        (["{tmp}/text.csv"], "no numeric value column"),
    ],
)
def test_bad_input_is_a_clear_error_without_traceback(tmp_path, capsys, args, message):
    (tmp_path / "bad.csv").write_bytes(b"timestamp,v\n1,\xff\xfe\n")
    write(tmp_path / "ok.csv", "timestamp,v\n1,2\n")
    write(tmp_path / "text.csv", "timestamp,name\n1,pump\n")
    code, _, err = run_main(capsys, *(a.format(tmp=tmp_path) for a in args))
    assert code == 2
    assert message in err and "Traceback" not in err


def test_bad_file_from_the_shell_is_one_line_without_traceback(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"\x00\x01 not a table")
    code, _, err = run_cli(tmp_path / "bad.csv")
    assert code == 2
    assert "streamae replay: error:" in err and "Traceback" not in err


def consume(settings, count):
    consumer = make_consumer(settings, settings.readings_topic, consumer_timeout_ms=15_000)
    try:
        records = []
        for record in consumer:
            records.append(record)
            if len(records) == count:
                break
    finally:
        consumer.close()
    return records


def test_replay_sends_the_values_and_labels(kafka_settings, tmp_path):
    path = write(
        tmp_path / "pump.csv",
        "datetime;Pressure;Temperature;anomaly;changepoint\n"
        "2024-01-01 00:00:00;1.25;40.0;0;0\n"
        "2024-01-01 00:00:01;2.5;40.5;1;1\n"
        "2024-01-01 00:00:02;3.75;41.0;0;0\n",
    )
    sent = produce(kafka_settings, load_recording(path).readings(), speed=50.0)
    assert sent == 3
    records = consume(kafka_settings, 3)
    assert [r.key for r in records] == [b"pump"] * 3
    readings = [decode_reading(r.value) for r in records]
    assert [r.values["Pressure"] for r in readings] == [1.25, 2.5, 3.75]
    assert [r.label for r in readings] == [0, 1, 0]
    assert all(set(r.values) == {"Pressure", "Temperature"} for r in readings)


def test_replay_command_sends_a_file_with_a_limit(kafka_settings, tmp_path):
    rows = "".join(f"{1000 * i},s{i % 2},{i},{i % 3 == 0:d}\n" for i in range(40))
    path = write(tmp_path / "two.csv", "timestamp,sensor_id,x,label\n" + rows)
    code, out, err = run_cli(
        path,
        "--limit",
        "30",
        "--bootstrap-servers",
        kafka_settings.bootstrap_servers,
        "--quiet",
        env={"STREAMAE_READINGS_TOPIC": kafka_settings.readings_topic},
    )
    assert code == 0, err
    assert "sent 30 readings of 2 sensor(s)" in out and "readings/s" not in err
    readings = [decode_reading(r.value) for r in consume(kafka_settings, 30)]
    assert len(readings) == 30
    for sensor in ("s0", "s1"):
        mine = [r for r in readings if r.sensor_id == sensor]
        assert [r.ts_ms for r in mine] == sorted(r.ts_ms for r in mine)
        assert all(r.label == int(r.values["x"] % 3 == 0) for r in mine)
