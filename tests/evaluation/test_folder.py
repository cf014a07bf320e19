"""evaluate_folder and `streamae evaluate` on tiny hand-built folders."""

import json
import math
import os
import re
import stat
import subprocess
import sys

import pandas as pd
import pytest

from streamae.cli import main
from streamae.evaluation import evaluate_folder
from streamae.exceptions import InputError

START = pd.Timestamp("2024-01-01 00:00:00")


def stamps(n: int, iso: bool = False) -> list[str]:
    times = [START + pd.Timedelta(minutes=i) for i in range(n)]
    fmt = "%Y-%m-%dT%H:%M:%S.000Z" if iso else "%Y-%m-%d %H:%M:%S"
    return [t.strftime(fmt) for t in times]


def write_detections(path, n: int, onsets: list[int], flags: dict[int, int], **extra) -> None:
    """A `streamae detect`-like output over rows ``onsets[0]..n-1`` (ISO timestamps)."""
    rows = range(onsets[0], n) if onsets else range(n)
    frame = pd.DataFrame(
        {
            "timestamp": [stamps(n, iso=True)[i] for i in rows],
            "score": 0.5,
            "threshold": 1.0,
            "anomaly_score": 0.0,
            "is_anomaly": [flags.get(i, 0) for i in rows],
            "err_value": 0.1,
            **extra,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


@pytest.fixture
def nab_like(tmp_path):
    """Two categories; catA/one.csv has one window (rows 20..29), catB/two.csv none.

    one.csv: 40 rows, probation floor(0.15·40) = 6 rows. Detections scored from row 0,
    is_anomaly = 1 at rows 10-11 (run A), 22-24 (run B), 35 (run C).
    two.csv: 40 rows, is_anomaly = 1 at row 30.
    """
    data, det = tmp_path / "data", tmp_path / "det"
    for name in ("catA/one.csv", "catB/two.csv"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": stamps(40), "value": range(40)}).to_csv(data / name, index=False)
    one_flags = {i: 1 for i in (10, 11, 22, 23, 24, 35)}
    write_detections(det / "catA/one.csv", 40, [0], one_flags)
    write_detections(det / "catB/two.csv", 40, [0], {30: 1})
    labels = tmp_path / "windows.json"
    labels.write_text(
        json.dumps(
            {
                "catA/one.csv": [["2024-01-01 00:20:00.000000", "2024-01-01 00:29:00.000000"]],
                "catB/two.csv": [],
                "catC/unused.csv": [],
            }
        )
    )
    return det, data, labels


# Hand-computed NAB (standard) for catA/one.csv:
#   run B onset row 22: position -(29 - 22 + 1)/10 = -0.8 → tanh(2)/tanh(2.5) = 0.977107
#   run A onset row 10: after probation, no window before it → -0.11
#   run C onset row 35: q = (35 - 29)/(10 - 1) = 2/3 → 0.11 · S(2/3) = -0.11 · tanh(5/3)
ONE_RAW = math.tanh(2) / math.tanh(2.5) - 0.11 - 0.11 * math.tanh(5 / 3)  # 0.764685
TWO_RAW = -0.11  # row 30, no window in the file


def test_evaluate_folder_by_hand(nab_like):
    report = evaluate_folder(*nab_like)
    one = report.per_file["catA/one.csv"]
    # Point-wise over 40 rows: truth 20..29; flagged 10, 11, 22, 23, 24, 35.
    assert (one["rows"], one["point_tp"], one["point_fp"], one["point_fn"]) == (40, 3, 3, 7)
    assert one["point_precision"] == 0.5
    assert one["point_recall"] == 0.3
    assert one["point_f1"] == 6 / 16
    # Events: 1 window, 3 runs; B overlaps it, A and C do not.
    assert (one["windows"], one["runs"]) == (1, 3)
    assert (one["event_tp"], one["event_fp"], one["event_fn"]) == (1, 2, 0)
    assert one["event_precision"] == 1 / 3
    assert one["event_recall"] == 1.0
    assert one["event_f1"] == 0.5
    assert (one["nab_detected"], one["nab_missed"], one["nab_false_alarms"]) == (1, 0, 2)
    assert one["nab_standard_raw"] == pytest.approx(ONE_RAW)
    assert round(one["nab_standard_raw"], 6) == 0.764685
    assert one["nab_standard"] == pytest.approx(100 * (ONE_RAW + 1) / 2)
    assert one["nab_reward_low_FP_rate_raw"] == pytest.approx(
        math.tanh(2) / math.tanh(2.5) - 0.22 - 0.22 * math.tanh(5 / 3)
    )

    two = report.per_file["catB/two.csv"]
    assert (two["point_tp"], two["point_fp"], two["point_fn"]) == (0, 1, 0)
    assert two["point_recall"] is None
    assert two["event_fp"] == 1
    assert two["nab_standard_raw"] == pytest.approx(TWO_RAW)
    assert two["nab_standard"] is None  # no windows: normalising is undefined

    assert set(report.per_category) == {"catA", "catB"}
    assert report.per_category["catB"]["nab_standard"] is None
    total = report.total
    assert (total["files"], total["rows"], total["windows"], total["runs"]) == (2, 80, 1, 4)
    assert (total["point_tp"], total["point_fp"], total["point_fn"]) == (3, 4, 7)
    assert total["point_precision"] == 3 / 7
    assert (total["event_tp"], total["event_fp"], total["event_fn"]) == (1, 3, 0)
    assert total["event_precision"] == 1 / 4
    # Summed before normalising: null -1, perfect 1.
    assert total["nab_standard"] == pytest.approx(100 * (ONE_RAW + TWO_RAW + 1) / 2)


def test_report_json_has_every_figure(nab_like):
    report = evaluate_folder(*nab_like)
    loaded = json.loads(report.to_json())
    assert set(loaded) == {"labels", "profiles", "per_file", "per_category", "total"}
    assert loaded["profiles"]["reward_low_FN_rate"]["fn_weight"] == 2.0
    assert loaded["per_file"]["catB/two.csv"]["nab_standard"] is None
    assert loaded["total"] == report.total


def test_column_labels_on_semicolon_files_with_training_rows_and_text_flags(tmp_path):
    """SKAB-like: ';'-separated data with an `anomaly` column; rows 0..3 were training rows."""
    data, det = tmp_path / "data", tmp_path / "det"
    (data / "valve1").mkdir(parents=True)
    anomaly = [0, 1, 0, 0, 0, 0, 1, 1, 1, 1] + [0] * 10  # windows at row 1 and rows 6..9
    pd.DataFrame(
        {"datetime": stamps(20), "x": range(20), "anomaly": anomaly, "changepoint": 0}
    ).to_csv(data / "valve1" / "0.csv", sep=";", index=False)
    flags = {8: 1, 9: 1, 10: 1, 15: 1}
    write_detections(det / "valve1" / "0.csv", 20, [0], flags)
    frame = pd.read_csv(det / "valve1" / "0.csv")
    frame["is_anomaly"] = frame["is_anomaly"].map({0: "False", 1: "True"})
    frame.loc[:3, "score"] = None  # what `streamae detect` writes for training rows
    frame.to_csv(det / "valve1" / "0.csv", index=False)

    total = evaluate_folder(det, data, "column:anomaly").total
    # Point-wise over the scored rows 4..19 (16 rows): truth 6..9; flagged 8, 9, 10, 15.
    assert (total["rows"], total["point_tp"], total["point_fp"], total["point_fn"]) == (16, 2, 2, 2)
    # Events over every window: (6, 9) found by run 8..10, (1, 1) missed, run 15 is a FP.
    assert (total["event_tp"], total["event_fp"], total["event_fn"]) == (1, 1, 1)


def test_multi_sensor_files_are_scored_per_sensor(tmp_path):
    data, det = tmp_path / "data", tmp_path / "det"
    data.mkdir()
    ts = stamps(10)
    rows = pd.DataFrame(
        {
            "timestamp": ts + ts,
            "sensor_id": ["a"] * 10 + ["b"] * 10,
            "value": range(20),
            "label": [0, 0, 0, 1, 1, 0, 0, 0, 0, 0] + [0] * 8 + [1, 1],
        }
    )
    rows.to_csv(data / "plant.csv", index=False)
    flags = [0, 0, 0, 0, 1, 1, 0, 0, 0, 0] + [0] * 9 + [1]
    det.mkdir()
    pd.DataFrame(
        {"timestamp": rows["timestamp"], "sensor_id": rows["sensor_id"], "is_anomaly": flags}
    ).sample(frac=1, random_state=0).to_csv(det / "plant.csv", index=False)

    report = evaluate_folder(det, data, "column:label")
    assert list(report.per_category) == ["."]  # a file at the top of the folder
    total = report.total
    # Sensor a: truth 3-4, flagged 4-5. Sensor b: truth 8-9, flagged 9. A run never
    # spans sensors, even though b's first rows follow a's last in the file.
    assert (total["point_tp"], total["point_fp"], total["point_fn"]) == (2, 1, 2)
    assert (total["windows"], total["runs"]) == (2, 2)
    assert (total["event_tp"], total["event_fp"], total["event_fn"]) == (2, 0, 0)


def test_repeated_timestamps_are_matched_in_order(tmp_path):
    data, det = tmp_path / "data", tmp_path / "det"
    data.mkdir()
    det.mkdir()
    ts = stamps(6)
    ts[3] = ts[2]  # a repeated hour, as in NAB's ec2_request_latency_system_failure.csv
    pd.DataFrame({"timestamp": ts, "v": range(6), "label": [0, 0, 0, 1, 0, 0]}).to_csv(
        data / "f.csv", index=False
    )
    pd.DataFrame({"timestamp": ts, "is_anomaly": [0, 0, 0, 1, 0, 0]}).to_csv(
        det / "f.csv", index=False
    )
    total = evaluate_folder(det, data, "column:label").total
    assert (total["point_tp"], total["point_fp"], total["point_fn"]) == (1, 0, 0)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("no data file", "no matching data file"),
        ("no is_anomaly", "no 'is_anomaly' column"),
        ("foreign timestamp", "not in the data file"),
        ("no labels entry", "no entry for 'catA/one.csv'"),
    ],
)
def test_bad_input_is_an_input_error(nab_like, breakage, message):
    det, data, labels = nab_like
    if breakage == "no data file":
        (data / "catB" / "two.csv").unlink()
    elif breakage == "no is_anomaly":
        frame = pd.read_csv(det / "catA" / "one.csv").drop(columns="is_anomaly")
        frame.to_csv(det / "catA" / "one.csv", index=False)
    elif breakage == "foreign timestamp":
        frame = pd.read_csv(det / "catA" / "one.csv")
        frame.loc[5, "timestamp"] = "2030-01-01T00:00:00Z"
        frame.to_csv(det / "catA" / "one.csv", index=False)
    else:
        labels.write_text(json.dumps({"catB/two.csv": []}))
    with pytest.raises(InputError, match=message):
        evaluate_folder(det, data, labels)


def test_a_bad_cell_among_epoch_timestamps_is_named_with_its_file_and_row(nab_like):
    det, data, labels = nab_like
    path = data / "catA" / "one.csv"
    frame = pd.read_csv(path)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).astype("int64") // 1_000_000
    frame["timestamp"] = frame["timestamp"].astype(str)
    frame.loc[5, "timestamp"] = "notatime"  # the 7th line of the file, after the header
    frame.to_csv(path, index=False)
    message = f"{path}: row 7: 'notatime' is not a timestamp in 'timestamp'"
    with pytest.raises(InputError, match=re.escape(message)):
        evaluate_folder(det, data, labels)


def test_missing_folders_are_input_errors(nab_like, tmp_path):
    det, data, labels = nab_like
    with pytest.raises(InputError, match="no such detections folder"):
        evaluate_folder(tmp_path / "nope", data, labels)
    with pytest.raises(InputError, match="no such data folder"):
        evaluate_folder(det, tmp_path / "nope", labels)


def test_cli_prints_the_table_and_writes_json(nab_like, tmp_path, capsys):
    det, data, labels = nab_like
    out = tmp_path / "report.json"
    code = main(
        ["evaluate", "--detections", str(det), "--data", str(data), "--labels", str(labels),
         "--json", str(out), "--per-file"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    total_line = [line for line in lines if line.startswith("total")][-1]
    # files, windows, point P/R/F1, event P/R/F1, three NAB profiles.
    expected_nab = 100 * (ONE_RAW + TWO_RAW + 1) / 2
    assert total_line.split()[1:4] == ["2", "1", f"{3 / 7:.3f}"]
    assert total_line.split()[-3] == f"{expected_nab:.1f}"
    assert any(line.startswith("catA/one.csv") for line in lines)
    assert any(line.startswith("catB ") for line in lines)
    assert json.loads(out.read_text())["total"]["point_tp"] == 3


def test_cli_bad_input_exits_2_without_traceback(nab_like, capsys):
    det, data, labels = nab_like
    code = main(["evaluate", "--detections", str(det), "--data", str(data), "--labels", "column:"])
    assert code == 2
    assert "needs a column name" in capsys.readouterr().err


def test_cli_subprocess_unreadable_labels_no_traceback(nab_like):
    det, data, labels = nab_like
    labels.write_text("{broken")
    result = subprocess.run(
        [sys.executable, "-m", "streamae", "evaluate", "--detections", str(det),
         "--data", str(data), "--labels", str(labels)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_folder_on_nab_with_a_perfect_and_a_null_detector(nab_root, tmp_path):
    """Through the real NAB files: alerting on each window's first row scores 100, never alerting 0."""
    data_dir = nab_root / "data"
    files = ["realKnownCause/nyc_taxi.csv", "artificialWithAnomaly/art_daily_jumpsup.csv"]
    windows = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    for detector in ("perfect", "null"):
        for name in files:
            frame = pd.read_csv(data_dir / name)
            flags = pd.Series(0, index=frame.index)
            if detector == "perfect":
                for start, _ in windows[name]:
                    flags[frame.index[frame["timestamp"] == start[:19]][0]] = 1
            out = tmp_path / detector / name
            out.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"timestamp": frame["timestamp"], "is_anomaly": flags}).to_csv(
                out, index=False
            )
        total = evaluate_folder(
            tmp_path / detector, data_dir, nab_root / "labels" / "combined_windows.json"
        ).total
        expected = 100.0 if detector == "perfect" else 0.0
        for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
            assert total[f"nab_{profile}"] == pytest.approx(expected), (detector, profile)
        assert total["event_recall"] == expected / 100


def test_cli_never_writes_its_report_over_a_data_file(nab_like, capsys):
    det, data, labels = nab_like
    victim = next(data.rglob("*.csv"))
    before = victim.read_bytes()
    code = main(
        ["evaluate", "--detections", str(det), "--data", str(data), "--labels", str(labels),
         "--json", str(victim)]
    )  # fmt: skip
    assert code == 2
    assert "exists and is not a report" in capsys.readouterr().err
    assert victim.read_bytes() == before


def test_cli_replaces_an_earlier_report_and_creates_a_missing_folder(nab_like, tmp_path):
    det, data, labels = nab_like
    args = ["evaluate", "--detections", str(det), "--data", str(data), "--labels", str(labels)]
    nested = tmp_path / "reports" / "today" / "r.json"
    assert main([*args, "--json", str(nested)]) == 0
    assert json.loads(nested.read_text())["total"]["point_tp"] == 3
    nested.write_text(nested.read_text().replace('"point_tp": 3', '"point_tp": 99'))
    assert main([*args, "--json", str(nested)]) == 0  # an earlier report: replaced
    assert json.loads(nested.read_text())["total"]["point_tp"] == 3


def test_cli_never_writes_its_report_over_other_json(nab_like, capsys):
    det, data, labels = nab_like
    before = labels.read_bytes()
    args = ["evaluate", "--detections", str(det), "--data", str(data), "--labels", str(labels)]
    assert main([*args, "--json", str(labels)]) == 2  # --labels and --json swapped by mistake
    assert "is not a report of evaluate or benchmark" in capsys.readouterr().err
    assert labels.read_bytes() == before


def test_detections_with_fewer_rows_than_the_data_are_reported(nab_like, caplog):
    det, data, labels = nab_like
    write_detections(det / "catB/two.csv", 25, [0], {})  # 25 of the data's 40 rows
    evaluate_folder(det, data, labels)
    assert "catB/two.csv: the detections have 25 of the data's 40 rows" in caplog.text
    assert "one.csv: the detections have" not in caplog.text


def test_labelled_files_missing_from_the_data_are_warned_about_once(nab_like, caplog):
    det, data, labels = nab_like  # the labels also name catC/unused.csv, not in the data
    report = evaluate_folder(det, data, labels)
    warnings = [r.getMessage() for r in caplog.records if "not in" in r.getMessage()]
    assert warnings == [
        f"{labels}: 1 labelled file(s) not in {data}, so not scored: catC/unused.csv"
    ]
    assert report.total["files"] == 2  # a warning, not an error


def test_many_labelled_files_missing_from_the_data_are_the_first_few_and_a_count(
    nab_like, tmp_path, caplog
):
    det, data, labels = nab_like
    windows = json.loads(labels.read_text())
    windows |= {f"catD/{i:02d}.csv": [] for i in range(12)}
    labels.write_text(json.dumps(windows))
    evaluate_folder(det, data, labels)
    assert "13 labelled file(s) not in" in caplog.text
    assert "so not scored: catC/unused.csv, catD/00.csv, catD/01.csv, catD/02.csv, " in caplog.text
    assert "catD/03.csv and 8 more" in caplog.text


def test_cli_never_replaces_a_pipe_with_its_report(nab_like, tmp_path):
    det, data, labels = nab_like
    pipe = tmp_path / "report.json"
    os.mkfifo(pipe)
    # A subprocess with a timeout: reading the pipe to check it would block for ever.
    result = subprocess.run(
        [sys.executable, "-m", "streamae", "evaluate", "--detections", str(det),
         "--data", str(data), "--labels", str(labels), "--json", str(pipe)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"--json {pipe}: exists and is not a regular file" in result.stderr
    assert stat.S_ISFIFO(pipe.stat().st_mode)


def test_cli_refuses_a_report_it_cannot_write_before_the_work(nab_like, capsys, monkeypatch):
    det, data, labels = nab_like
    runs = []
    monkeypatch.setattr("streamae.cli.evaluate.evaluate_folder", lambda *a, **k: runs.append(a))
    victim = next(data.rglob("*.csv"))
    args = ["evaluate", "--detections", str(det), "--data", str(data), "--labels", str(labels)]
    assert main([*args, "--json", str(victim / "r.json")]) == 2
    assert f"{victim} is a file, not a folder" in capsys.readouterr().err
    assert runs == []  # refused before the evaluation, not after it
