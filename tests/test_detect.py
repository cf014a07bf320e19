import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamae.cli import main
from streamae.config import Settings
from streamae.detect import DetectOptions, detect_series
from streamae.detectors.zscore import ZScoreDetector
from streamae.exceptions import ConfigError
from streamae.messages import Reading
from streamae.pipeline import Pipeline
from streamae.tables import SensorSeries, read_series

WINDOW = 16
TRAIN = 500
SETTINGS = Settings(window_size=WINDOW)


def write_csv(path: Path, rows: int = 1500, seed: int = 0, bursts=((800, 60), (1200, 12))) -> Path:
    """Two noisy channels with labelled bursts of +6 sigma; one row per second."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((rows, 2)) + [10.0, 50.0]
    label = np.zeros(rows, dtype=int)
    for start, size in bursts:
        values[start : start + size] += 6.0
        label[start : start + size] = 1
    stamps = pd.date_range("2026-01-01", periods=rows, freq="1s")
    frame = pd.DataFrame(
        {
            "timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"),
            "pressure": values[:, 0],
            "temperature": values[:, 1],
            "anomaly": label,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def readings(series: SensorSeries) -> list[Reading]:
    labels = series.labels.tolist() if series.labels is not None else [None] * len(series)
    return [
        Reading(series.sensor_id, ts, dict(zip(series.channels, row, strict=True)), label)
        for ts, row, label in zip(
            series.ts_ms.tolist(), series.values.tolist(), labels, strict=True
        )
    ]


def one_reading_at_a_time(series: SensorSeries, train: int):
    """The reference: the in-memory Pipeline fed one reading per call."""
    detector = ZScoreDetector.fit([series.slice(0, train)], WINDOW)
    pipeline = Pipeline(SETTINGS, detector)
    for reading in readings(series.slice(train - WINDOW + 1, train)):
        pipeline.prime([reading])
    scores, alerts = [], []
    for reading in readings(series.slice(train)):
        out = pipeline.process([reading])
        scores += out.scores
        alerts += out.alerts
    return scores, alerts


def detect(*args: str) -> int:
    return main(["detect", *map(str, args), "--detector", "zscore", "--quiet"])


def test_detect_gives_exactly_the_alerts_of_the_pipeline_fed_one_reading_at_a_time(tmp_path):
    source = write_csv(tmp_path / "pump.csv")
    (series,) = read_series(source)
    scores, alerts = one_reading_at_a_time(series, TRAIN)
    assert [a.state for a in alerts].count("open") >= 2

    result = detect_series(
        [series], ZScoreDetector.fit([series.slice(0, TRAIN)], WINDOW), SETTINGS, [TRAIN], chunk=97
    )
    assert result.alerts == alerts

    out = tmp_path / "pump-out.csv"
    assert detect(source, "--out", out, "--train-rows", TRAIN, "--window", WINDOW) == 0
    frame = pd.read_csv(out)
    test_rows = frame.iloc[TRAIN:]
    assert test_rows["is_anomaly"].tolist() == [int(s.is_anomaly) for s in scores]
    assert test_rows["score"].to_numpy() == pytest.approx([s.score for s in scores], rel=1e-12)
    assert test_rows["threshold"].to_numpy() == pytest.approx(
        [s.threshold for s in scores], rel=1e-12
    )
    onsets = np.flatnonzero(np.diff(frame["is_anomaly"].to_numpy(), prepend=0) == 1)
    assert len(onsets) == [a.state for a in alerts].count("open")


def test_output_has_one_row_per_input_row_with_the_documented_columns(tmp_path):
    source = write_csv(tmp_path / "pump.csv", rows=700)
    out = tmp_path / "out.csv"
    assert detect(source, "--out", out, "--train-fraction", 0.5, "--window", WINDOW) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == [
        "timestamp",
        "score",
        "threshold",
        "anomaly_score",
        "is_anomaly",
        "err_pressure",
        "err_temperature",
        "label",
    ]
    assert len(frame) == 700
    assert frame["timestamp"].iloc[0] == "2026-01-01T00:00:00.000Z"
    train, test = frame.iloc[:350], frame.iloc[350:]
    assert train["score"].isna().all() and (train["is_anomaly"] == 0).all()
    assert (train["anomaly_score"] == 0).all()
    # Primed with the end of the training rows: the very first test row is scored.
    assert test["score"].notna().all()
    assert test["anomaly_score"].between(0, 1).all()
    mean_error = test[["err_pressure", "err_temperature"]].mean(axis=1)
    assert test["score"].to_numpy() == pytest.approx(mean_error.to_numpy())
    assert frame["label"].tolist() == pd.read_csv(source)["anomaly"].tolist()


def test_without_training_rows_before_them_the_first_window_minus_one_rows_are_unscored(tmp_path):
    normal = write_csv(tmp_path / "normal.csv", rows=400, seed=5, bursts=())
    source = write_csv(tmp_path / "pump.csv", rows=300)
    out = tmp_path / "out.csv"
    assert detect(source, "--out", out, "--train-file", normal, "--window", WINDOW) == 0
    frame = pd.read_csv(out)
    assert frame["score"].isna().tolist() == [True] * (WINDOW - 1) + [False] * (300 - WINDOW + 1)


def test_stride_leaves_rows_between_windows_unscored_but_keeps_the_alert_state(tmp_path):
    source = write_csv(tmp_path / "pump.csv")
    out = tmp_path / "out.csv"
    assert (
        detect(source, "--out", out, "--train-rows", TRAIN, "--window", WINDOW, "--stride", 4) == 0
    )
    frame = pd.read_csv(out).iloc[TRAIN:]
    scored = frame["score"].notna().to_numpy()
    assert scored.tolist() == [i % 4 == 0 for i in range(len(frame))]  # primed: due at once
    flags = frame["is_anomaly"].to_numpy()
    last_scored = np.maximum.accumulate(np.where(scored, np.arange(len(frame)), 0))
    assert flags.tolist() == flags[last_scored].tolist()
    assert flags.sum() > 0


def test_a_missing_value_is_a_gap_that_scores_nothing_and_opens_no_alert(tmp_path):
    source = write_csv(tmp_path / "pump.csv", bursts=())
    frame = pd.read_csv(source)
    frame.loc[[100, 700], "pressure"] = None  # one in the training rows, one scored
    frame.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    assert detect(source, "--out", out, "--train-rows", TRAIN, "--window", WINDOW) == 0
    result = pd.read_csv(out)
    assert len(result) == 1500
    assert result["score"].iloc[TRAIN:].isna().tolist() == [i == 700 for i in range(TRAIN, 1500)]
    assert result["is_anomaly"].sum() == 0


def test_after_a_missing_value_a_row_with_the_same_timestamp_gets_its_score(tmp_path):
    source = write_csv(tmp_path / "pump.csv", bursts=())
    frame = pd.read_csv(source)
    frame.loc[701, "timestamp"] = frame.loc[700, "timestamp"]
    frame.loc[700, "pressure"] = None
    frame.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    assert detect(source, "--out", out, "--train-rows", TRAIN, "--window", WINDOW) == 0
    scored = pd.read_csv(out)["score"].notna()
    assert scored.iloc[699:703].tolist() == [True, False, True, True]


def test_rows_repeating_a_timestamp_are_counted_in_a_warning_and_left_unscored(tmp_path, caplog):
    source = write_csv(tmp_path / "pump.csv", bursts=())
    frame = pd.read_csv(source)
    frame.loc[[701, 702, 900], "timestamp"] = frame.loc[[700, 700, 899], "timestamp"].to_numpy()
    frame.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    assert detect(source, "--out", out, "--train-rows", TRAIN, "--window", WINDOW) == 0
    scored = pd.read_csv(out)["score"].notna()
    assert scored.iloc[[700, 701, 702, 703, 899, 900]].tolist() == [
        True,
        False,
        False,
        True,
        True,
        False,
    ]
    assert "pump.csv: 3 row(s) repeat the timestamp of an earlier row" in caplog.text


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's overflow warnings fail it
def test_zscore_scores_are_the_same_in_any_unit_even_near_the_largest_float(tmp_path):
    source = write_csv(tmp_path / "pump.csv")
    huge = tmp_path / "huge.csv"
    frame = pd.read_csv(source)
    frame[["pressure", "temperature"]] *= 1e306  # finite, but their sums and squares are not
    frame.to_csv(huge, index=False)
    outputs = []
    for path in (source, huge):
        out = tmp_path / f"{path.stem}-out.csv"
        assert detect(path, "--out", out, "--train-rows", TRAIN, "--window", WINDOW) == 0
        outputs.append(pd.read_csv(out))
    plain, scaled = outputs
    assert plain["is_anomaly"].any()
    np.testing.assert_allclose(scaled["score"], plain["score"], rtol=1e-9)
    assert scaled["is_anomaly"].tolist() == plain["is_anomaly"].tolist()


def test_too_few_training_rows_for_a_bar_are_refused_at_training(tmp_path, capsys):
    source = write_csv(tmp_path / "pump.csv")
    out = tmp_path / "out.csv"
    # 20 rows hold 5 windows of 16: 5 normal scores, under the 10 a threshold starts from.
    assert detect(source, "--out", out, "--train-rows", 20, "--window", WINDOW) == 2
    assert "a model trained on 20 rows has 5 normal score(s)" in capsys.readouterr().err
    assert not out.exists()


def test_an_existing_file_is_replaced_only_if_detect_wrote_it(tmp_path, capsys):
    source = write_csv(tmp_path / "pump.csv", bursts=())
    other = write_csv(tmp_path / "other.csv", rows=600, seed=1)
    before = other.read_bytes()
    args = ["--train-rows", TRAIN, "--window", WINDOW]
    assert detect(source, "--out", other, *args) == 2
    assert "exists and is not an output of detect" in capsys.readouterr().err
    assert other.read_bytes() == before
    out = tmp_path / "out.csv"
    assert detect(source, "--out", out, *args) == 0
    assert detect(source, "--out", out, *args) == 0  # its own output: replaced
    assert len(pd.read_csv(out)) == 1500


def test_an_out_ending_in_parquet_is_parquet_and_replaced_on_a_rerun(tmp_path):
    source = write_csv(tmp_path / "pump.csv", rows=600, bursts=())
    out = tmp_path / "scored.parquet"
    assert detect(source, "--out", out, "--train-rows", TRAIN) == 0
    assert detect(source, "--out", out, "--train-rows", TRAIN) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 600 and frame["score"].notna().sum() == 600 - TRAIN


def test_an_out_ending_in_a_slash_is_a_new_folder(tmp_path):
    source = write_csv(tmp_path / "pump.csv", rows=600, bursts=())
    assert detect(source, "--out", f"{tmp_path / 'scored'}/", "--train-rows", TRAIN) == 0
    assert len(pd.read_csv(tmp_path / "scored" / "pump.csv")) == 600


def test_a_sensor_id_column_splits_the_file_and_is_written_back(tmp_path):
    a = pd.read_csv(write_csv(tmp_path / "a.csv", rows=600, seed=1))
    b = pd.read_csv(write_csv(tmp_path / "b.csv", rows=600, seed=2, bursts=()))
    both = pd.concat([a.assign(sensor_id="pump-a"), b.assign(sensor_id="pump-b")])
    source = tmp_path / "both.csv"
    both.sort_values("timestamp", kind="stable").to_csv(source, index=False)
    out = tmp_path / "out.csv"
    assert detect(source, "--out", out, "--train-rows", 300, "--window", WINDOW) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 1200
    assert frame["sensor_id"].value_counts().to_dict() == {"pump-a": 600, "pump-b": 600}
    for _, rows in frame.groupby("sensor_id"):
        assert rows["score"].iloc[:300].isna().all() and rows["score"].iloc[300:].notna().all()


def test_a_folder_mirrors_its_relative_paths_and_one_bad_file_does_not_stop_the_others(
    tmp_path, capsys
):
    data = tmp_path / "data"
    write_csv(data / "plant-1" / "pump.csv", rows=800)
    write_csv(data / "plant-2" / "valve.csv", rows=800, seed=3)
    write_csv(data / "plant-2" / "short.csv", rows=20)
    out = tmp_path / "out"
    code = detect(data, "--out", out, "--train-fraction", 0.5, "--window", WINDOW, "--jobs", 2)
    err = capsys.readouterr()
    assert code == 2
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == [
        "plant-1/pump.csv",
        "plant-2/valve.csv",
    ]
    assert "1 of 3 file(s) failed" in err.err and "short.csv" in err.err
    assert "FAILED" in err.err and "training needs at least 16 rows" in err.err
    assert "Traceback" not in err.out + err.err


TRAINING = ["--window", "16", "--detector", "zscore"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.csv", "--train-fraction", "0.2", *TRAINING], "no such file or folder"),
        (["pump.csv", "--train-fraction", "0", *TRAINING], "between 0 and 1"),
        (["pump.csv", *TRAINING], "say what to train on"),
        (["pump.csv", "--train-rows", "10", "--columns", "flow"], "unknown column(s) 'flow'"),
        (["pump.csv", "--train-rows", "10", *TRAINING], "training needs at least 16 rows"),
        (["pump.csv", "--train-rows", "1500", *TRAINING], "nothing is left to score"),
        (["pump.csv", "--train-file", "missing.csv", *TRAINING], "missing.csv"),
        (["pump.csv", "--train-file", "other.csv", *TRAINING], "but model zscore-"),
        (["pump.csv", "--model", "nowhere"], "model folder nowhere does not exist"),
        (["pump.csv", "--model", "nowhere", "--window", "8"], "drop them"),
    ],
)
def test_bad_input_gives_a_clear_message_and_no_traceback(
    tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "pump.csv")
    pd.read_csv(tmp_path / "pump.csv").rename(columns={"pressure": "flow"}).to_csv(
        tmp_path / "other.csv", index=False
    )
    assert main(["detect", *args, "--out", "out.csv", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err + captured.out
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out.csv").exists()


def test_a_fraction_outside_0_1_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "x.csv", "--out", "o.csv", "--train-fraction", "1.5"])
    assert exit_info.value.code == 2
    assert "must be between 0 and 1" in capsys.readouterr().err


def test_detect_options_refuse_two_training_sources():
    with pytest.raises(ConfigError, match="only one of"):
        DetectOptions(train_fraction=0.1, train_rows=5)


def test_training_options_of_the_wrong_name_or_type_are_named_when_detect_trains():
    from streamae.detect import train

    for training, message in [
        ((("epochs", "5"),), "training option 'epochs' must be an integer, got '5'"),
        ((("window", 8),), "training option(s) window: set by the setting(s) window_size"),
    ]:
        options = DetectOptions(train_rows=100, training=training)
        with pytest.raises(ConfigError) as raised:  # before any training
            train([], SETTINGS, options)
        assert message in str(raised.value)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny autoencoder trained on a normal pump file, saved as a model folder."""
    from streamae import artifact
    from streamae.training import TrainConfig, train_detector

    folder = tmp_path_factory.mktemp("model")
    (normal,) = read_series(write_csv(folder / "normal.csv", rows=400, seed=4, bursts=()))
    config = TrainConfig(window=WINDOW, hidden=8, latent=4, epochs=2, device="cpu")
    return artifact.save(train_detector([normal], config, progress=False), folder / "model")


def test_a_saved_model_skips_the_training_rows_and_scores_the_rest(tmp_path, saved_model):
    source = write_csv(tmp_path / "pump.csv", rows=700)
    out = tmp_path / "out.csv"
    assert main(["detect", str(source), "--out", str(out), "--model", str(saved_model),
                 "--train-rows", "300", "--quiet"]) == 0  # fmt: skip
    frame = pd.read_csv(out)
    assert frame["score"].iloc[:300].isna().all() and frame["score"].iloc[300:].notna().all()
    assert frame["is_anomaly"].iloc[:300].eq(0).all()


def test_a_saved_model_refuses_data_with_other_channels(tmp_path, saved_model, capsys):
    source = tmp_path / "other.csv"
    pd.read_csv(write_csv(tmp_path / "pump.csv")).rename(columns={"pressure": "flow"}).to_csv(
        source, index=False
    )
    out = tmp_path / "out.csv"
    assert main(["detect", str(source), "--out", str(out), "--model", str(saved_model)]) == 2
    err = capsys.readouterr().err
    assert "expects ['pressure', 'temperature']" in err and "Traceback" not in err


def test_an_out_that_is_not_a_regular_file_is_left_as_it_is(tmp_path, capsys):
    source = write_csv(tmp_path / "pump.csv", rows=600, bursts=())
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    assert detect(source, "--out", pipe, "--train-rows", TRAIN, "--window", WINDOW) == 2
    assert f"{pipe}: exists and is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(pipe.stat().st_mode)  # not replaced by a file


@pytest.mark.parametrize("inside", ["out/", ""])
def test_an_output_folder_inside_the_input_folder_is_refused(tmp_path, capsys, inside):
    data = tmp_path / "data"
    write_csv(data / "pump.csv", rows=600, bursts=())
    assert detect(data, "--out", f"{data}/{inside}", "--train-rows", TRAIN) == 2
    assert "is inside the input folder" in capsys.readouterr().err
    assert [p.name for p in data.rglob("*")] == ["pump.csv"]


@pytest.mark.parametrize("detector", ["zscore", "autoencoder"])
def test_a_channel_without_values_is_named(tmp_path, capsys, detector):
    source = tmp_path / "pump.csv"
    pd.read_csv(write_csv(source, rows=600)).assign(flow=np.nan).to_csv(source, index=False)
    args = ["detect", str(source), "--out", str(tmp_path / "out.csv"), "--train-rows", str(TRAIN)]
    assert main([*args, "--window", str(WINDOW), "--detector", detector, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{source}: channel 'flow' has no finite training value" in err


def test_an_out_that_cannot_be_written_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    runs = []
    monkeypatch.setattr("streamae.cli.detect.detect_path", lambda *a, **k: runs.append(a))
    source = write_csv(tmp_path / "pump.csv", rows=300)
    before = source.read_bytes()
    out = source / "detections.csv"  # under a file: no folder can be made there
    assert detect(str(source), "--out", str(out), "--train-rows", "200") == 2
    assert f"--out {out}: {source} is a file, not a folder" in capsys.readouterr().err
    assert runs == []  # refused before the training and scoring, not after them
    assert source.read_bytes() == before
