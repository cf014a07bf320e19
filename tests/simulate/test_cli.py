"""``streamae simulate``: files, Kafka, and clear errors for bad options."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import defaultdict

import pandas as pd
import pytest

from streamae.cli import main
from streamae.kafka.clients import make_consumer
from streamae.messages import decode_reading
from streamae.replay import ReadingSender
from streamae.simulate import Simulator
from streamae.tables import read_series


def run_main(capsys, *args):
    """The simulate command in this process: exit code, stdout, stderr."""
    try:
        code = main(["simulate", *map(str, args)])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_cli(*args, env=None, code=None):
    """The simulate command in a fresh interpreter (``code`` runs first): exit code, out, err."""
    launch = ["-m", "streamae"] if code is None else ["-c", code + "\nsys.exit(main())"]
    result = subprocess.run(
        [sys.executable, *launch, "simulate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    return result.returncode, result.stdout, result.stderr


def test_out_writes_a_reproducible_labelled_file(tmp_path, capsys):
    options = ["--sensors", 3, "--rate", 30, "--duration", 60, "--anomaly-rate", 0.05]
    code, out, _ = run_main(capsys, *options, "--out", tmp_path / "a.csv")
    assert code == 0
    assert "wrote 1800 readings (3 sensors," in out
    run_main(capsys, *options, "--out", tmp_path / "b.csv")
    run_main(capsys, *options, "--out", tmp_path / "c.csv", "--seed", 1)
    first = (tmp_path / "a.csv").read_bytes()
    assert first == (tmp_path / "b.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    series = read_series(tmp_path / "a.csv")
    assert [s.sensor_id for s in series] == ["sensor-000", "sensor-001", "sensor-002"]
    assert all(len(s) == 600 and s.labels is not None for s in series)
    assert (tmp_path / "a.events.json").is_file()


def test_options_shape_the_run(tmp_path, capsys):
    code, _, _ = run_main(
        capsys,
        "--sensors", 2, "--rate", 4, "--duration", 100, "--channels", 5, "--anomaly-rate", 0,
        "--start", "2025-03-01T12:00:00Z", "--out", f"{tmp_path}/runs/",
    )  # fmt: skip
    assert code == 0
    [series] = read_series(tmp_path / "runs" / "sensor-001.csv")
    assert len(series) == 200 and len(series.channels) == 5 and not series.labels.any()
    assert series.ts_ms[0] == 1740830400000 + 250 and series.ts_ms[1] - series.ts_ms[0] == 500


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "-1"], "argument --rate: must be > 0"),
        (["--sensors", "0"], "argument --sensors"),
        (["--channels", "x"], "argument --channels"),
        (["--anomaly-rate", "2"], "argument --anomaly-rate"),
        (["--anomaly-rate", "0.9"], "too high"),
        (["--seed", "-3"], "argument --seed"),
        (["--start", "soon"], "argument --start"),
        (["--kinds", "meteor"], "meteor"),
        (["--sensors", "1", "--rate", "5000"], "per sensor"),
        (["--duration", "0.01"], "less than one reading"),
        (["--duration", "1e308"], "does not fit the timestamps"),  # was an OverflowError
        (["--rate", "1e308"], "give a shorter --duration or a lower --rate"),
        (["--duration", "1e12"], "does not fit the timestamps (1970..2100"),  # not "start"
        (["--out", "{tmp}/run.txt"], ".csv or .parquet"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path, capsys, args, message):
    code, _, err = run_main(capsys, *(a.format(tmp=tmp_path) for a in args))
    assert code == 2
    assert message in err and "Traceback" not in err


def test_a_run_too_short_for_any_anomaly_event_is_warned_about(
    tmp_path, capsys, caplog, monkeypatch
):
    monkeypatch.setenv("STREAMAE_WINDOW_SIZE", "16")  # events come after 3 windows: 48 readings
    short = ["--sensors", 10, "--rate", 100, "--duration", 10]
    code, out, _ = run_main(capsys, *short, "--out", tmp_path / "a.csv")
    assert code == 0 and "0 anomaly events" in out
    assert "no anomaly event fits in 100 readings per sensor" in caplog.text
    assert "give a longer --duration (e.g. 742) or a higher --anomaly-rate" in caplog.text
    caplog.clear()
    run_main(capsys, *short, "--anomaly-rate", 0, "--out", tmp_path / "b.csv")  # none asked for
    assert "no anomaly event" not in caplog.text


def test_bad_option_from_the_shell_is_one_line_without_traceback():
    code, _, err = run_cli("--rate", "-1")
    assert code == 2
    assert "argument --rate: must be > 0" in err and "Traceback" not in err


def test_no_broker_is_a_clear_error_without_traceback():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    # A short bootstrap timeout, so the test does not wait out the default one.
    setup = "import sys\nimport streamae.kafka.clients as c\nc.BOOTSTRAP_TIMEOUT_MS = 1500\n"
    setup += "from streamae.cli import main"
    code, out, err = run_cli("--duration", "1", "--bootstrap-servers", address, code=setup)
    assert code == 2
    assert f"Kafka at {address} is not reachable" in err
    assert "Traceback" not in err and "sent" not in out


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


def test_simulated_readings_arrive_with_labels_in_order_per_sensor(kafka_settings):
    simulator = Simulator(5, 240, rate=1000.0, anomaly_rate=0.2, seed=2, min_gap=20)
    expected = list(simulator.readings())
    assert any(r.label for r in expected)
    with ReadingSender(kafka_settings) as sender:
        sent = sender.send(((r.ts_ms, r) for r in expected), speed=1.0)
    assert sent == len(expected) == 1200
    records = consume(kafka_settings, len(expected))
    assert all(r.key.decode() == decode_reading(r.value).sensor_id for r in records)
    by_sensor = defaultdict(list)
    for record in records:
        reading = decode_reading(record.value)
        by_sensor[reading.sensor_id].append(reading)
    for sensor_id in simulator.sensor_ids:
        assert by_sensor[sensor_id] == [r for r in expected if r.sensor_id == sensor_id]


def test_simulate_command_sends_every_reading_at_1000_per_second(kafka_settings):
    code, out, err = run_cli(
        "--sensors", 10, "--rate", 1000, "--duration", 3, "--anomaly-rate", 0.1,
        "--bootstrap-servers", kafka_settings.bootstrap_servers,
        env={"STREAMAE_READINGS_TOPIC": kafka_settings.readings_topic, "STREAMAE_WINDOW_SIZE": "8"},
    )  # fmt: skip
    assert code == 0, err
    assert "sent 3000 readings (10 sensors," in out
    readings = [decode_reading(r.value) for r in consume(kafka_settings, 3000)]
    assert len(readings) == 3000
    assert {r.sensor_id for r in readings} == {f"sensor-{i:03d}" for i in range(10)}
    assert all(r.label in (0, 1) for r in readings) and any(r.label for r in readings)


def test_out_replaces_an_earlier_run_but_never_other_data(tmp_path, capsys):
    small = ["simulate", "--sensors", "2", "--rate", "20", "--duration", "5"]
    data = tmp_path / "plant.csv"
    data.write_text("ts,value\n1,2\n")
    folder = tmp_path / "recorded"
    folder.mkdir()
    (folder / "pump.csv").write_text("ts,value\n1,2\n")
    assert main([*small, "--out", str(data)]) == 2
    assert main([*small, "--out", f"{folder}/"]) == 2
    assert capsys.readouterr().err.count("holds data that simulate did not write") == 2
    assert data.read_text() == "ts,value\n1,2\n"
    assert (folder / "pump.csv").read_text() == "ts,value\n1,2\n"
    run = tmp_path / "run.csv"
    assert main([*small, "--out", str(run)]) == 0
    assert main([*small, "--seed", "9", "--out", str(run)]) == 0  # an earlier run: replaced
    assert run.read_text().count("\n") == 101
    # run.csv's events file must not pass a user's run.parquet off as a run too.
    user = tmp_path / "run.parquet"
    pd.DataFrame({"ts": [1, 2], "value": [3.0, 4.0]}).to_parquet(user)
    assert main([*small, "--out", str(user)]) == 2
    assert pd.read_parquet(user)["value"].tolist() == [3.0, 4.0]


def test_quiet_leaves_out_the_progress_bar_but_not_the_summary(tmp_path, capsys):
    options = ["--sensors", 2, "--rate", 20, "--duration", 5]
    code, out, err = run_main(capsys, *options, "--out", tmp_path / "loud.csv")
    assert code == 0 and "readings/s" in err
    code, out, err = run_main(capsys, *options, "--out", tmp_path / "quiet.csv", "--quiet")
    assert code == 0 and "wrote 100 readings" in out and err == ""
