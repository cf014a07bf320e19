"""``streamae train`` end to end on small CSV files."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from streamae import artifact
from streamae.cli import main

FAST = ["--window", "16", "--hidden", "8", "--latent", "4", "--epochs", "2", "--device", "cpu"]


def write_csv(path, n=200, sensors=("pump",), columns=("pressure", "temperature")):
    rows = ["timestamp,sensor_id," + ",".join(columns) + ",anomaly"]
    for sensor in sensors:
        for i in range(n):
            values = ",".join(f"{np.sin(i / (5 + k)) + k:.5f}" for k in range(len(columns)))
            rows.append(f"{1_700_000_000_000 + 1000 * i},{sensor},{values},0")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_train_writes_a_loadable_model_and_prints_a_summary(tmp_path, capsys):
    data = write_csv(tmp_path / "normal.csv", sensors=("a", "b"))
    out = tmp_path / "model"
    assert main(["train", "--input", str(data), "--out", str(out), "--quiet", *FAST]) == 0
    detector = artifact.load(out, device="cpu")
    assert detector.channels == ("pressure", "temperature")
    assert detector.window_size == 16
    summary = capsys.readouterr().out
    assert f"model {detector.version}" in summary
    assert "400 rows from 2 sensor(s) in 1 file(s)" in summary
    assert "p50" in summary and "p99" in summary and str(out) in summary


def test_train_options_reach_the_model(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "one.csv", n=300)
    write_csv(folder / "two.csv", n=300, sensors=("other",))
    out = tmp_path / "model"
    args = ["train", "--input", str(folder), "--out", str(out), "--quiet", *FAST]
    args += ["--arch", "conv", "--columns", "temperature", "--max-rows", "100", "--seed", "2"]
    args += ["--noise", "0.1", "--l1", "0.001", "--score-tail", "4"]
    assert main(args) == 0
    doc = json.loads((out / "model.json").read_text())
    assert doc["hyperparameters"]["tail"] == 4
    assert doc["arch"] == "conv" and doc["channels"] == ["temperature"]
    assert doc["training_data"]["rows"] == 200 and doc["training_data"]["sensors"] == 2
    config = doc["training"]["config"]
    assert (config["seed"], config["noise_sigma"], config["l1_latent"]) == (2, 0.1, 0.001)


def test_window_comes_from_the_environment_when_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMAE_WINDOW_SIZE", "8")
    data = write_csv(tmp_path / "normal.csv")
    out = tmp_path / "model"
    args = ["train", "--input", str(data), "--out", str(out), "--quiet", "--epochs", "1"]
    assert main([*args, "--hidden", "4", "--latent", "2", "--device", "cpu"]) == 0
    assert artifact.load(out).window_size == 8


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--columns", "nope"], "unknown column(s) 'nope'"),
        (["--max-rows", "10"], "too few rows to train with window 16"),
        # 15 windows, all overlapping: 3 validation windows' scores, under the 10 a bar needs.
        (["--max-rows", "30"], "a model trained on 30 rows has 3 normal score(s)"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, extra, message):
    data = write_csv(tmp_path / "normal.csv")
    args = ["train", "--input", str(data), "--out", str(tmp_path / "m"), "--quiet", *FAST]
    assert main([*args, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_rows_repeating_a_timestamp_are_counted_in_a_warning_saying_what_training_does(
    tmp_path, caplog
):
    data = write_csv(tmp_path / "normal.csv")
    frame = pd.read_csv(data)
    frame.assign(timestamp=frame["timestamp"][0]).to_csv(data, index=False)  # all rows at one
    args = ["train", "--input", str(data), "--out", str(tmp_path / "m"), "--quiet", *FAST]
    assert main(args) == 0
    assert (
        f"{data}: 199 row(s) repeat the timestamp of an earlier row of their sensor: training "
        "takes each as the next reading, but detect and the monitor score only the first"
    ) in caplog.text


def test_a_folder_with_other_files_is_refused_before_training(tmp_path, capsys, monkeypatch):
    trainings = []
    monkeypatch.setattr("streamae.cli.train.train_detector", lambda *a, **k: trainings.append(a))
    data = write_csv(tmp_path / "normal.csv")
    args = ["train", "--input", str(data), "--out", str(tmp_path), "--quiet", *FAST]
    assert main(args) == 2
    assert "holds other files and no model" in capsys.readouterr().err
    assert trainings == []  # refused before the training, not after it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["normal.csv"]


def test_invalid_option_value_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--input", "x.csv", "--out", str(tmp_path), "--latent", "0"])
    assert exit_info.value.code == 2
    assert "--latent: must be > 0" in capsys.readouterr().err


def test_missing_input_in_a_subprocess_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "streamae", "train", "--input", str(tmp_path / "missing.csv")]
        + ["--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--val-fraction", "0"], "argument --val-fraction: must be between 0 and 1 (exclusive)"),
        (["--val-fraction", "1"], "argument --val-fraction: must be between 0 and 1 (exclusive)"),
    ],
)
def test_a_val_fraction_leaving_no_training_or_validation_is_a_usage_error(
    tmp_path, capsys, extra, message
):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--input", "x.csv", "--out", str(tmp_path / "m"), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_score_tail_longer_than_the_window_names_the_option(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STREAMAE_WINDOW_SIZE", "8")
    data = write_csv(tmp_path / "normal.csv")
    args = ["train", "--input", str(data), "--out", str(tmp_path / "m"), "--score-tail", "10"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--score-tail 10: must be at most the window, 8 readings" in err
    assert not (tmp_path / "m").exists()


def test_an_out_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, monkeypatch):
    trainings = []
    monkeypatch.setattr("streamae.cli.train.train_detector", lambda *a, **k: trainings.append(a))
    data = write_csv(tmp_path / "normal.csv")
    before = data.read_bytes()
    args = ["train", "--input", str(data), "--out", str(data / "model"), "--quiet", *FAST]
    assert main(args) == 2
    assert f"--out {data / 'model'}: {data} is a file, not a folder" in capsys.readouterr().err
    assert trainings == []  # refused before the training, not after it
    assert data.read_bytes() == before
