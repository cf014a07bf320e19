"""``streamae benchmark``: protocols, profiles, the report, and errors without tracebacks."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamae.benchmark import PROTOCOLS, model_config, protocol_profile, run_benchmark
from streamae.cli import main
from streamae.config import Settings
from streamae.detect import DetectOptions
from streamae.exceptions import ConfigError

START = "2024-01-01"


def nab_file(path: Path, rows: int, seed: int, jump: tuple[int, int] | None) -> list[list[str]]:
    """A noisy sine; ``jump`` = (first, last) rows raised by 8 sigma. Returns its label window."""
    rng = np.random.default_rng(seed)
    values = 10 + np.sin(np.arange(rows) / 10) + 0.1 * rng.standard_normal(rows)
    stamps = pd.date_range(START, periods=rows, freq="5min")
    windows = []
    if jump is not None:
        first, last = jump
        values[first : last + 1] += 8.0
        # A NAB window starts before and ends after the anomaly it surrounds.
        windows.append([str(stamps[first - 20]), str(stamps[last + 20])])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": values})
    frame.to_csv(path, index=False)
    return windows


@pytest.fixture
def nab_corpus(tmp_path: Path) -> Path:
    """Two small NAB-style files (one anomaly in one of them) and a windows JSON."""
    root = tmp_path / "NAB"
    labels = {
        "artificial/with_jump.csv": nab_file(
            root / "data/artificial/with_jump.csv", 800, 0, (500, 530)
        ),
        "real/quiet.csv": nab_file(root / "data/real/quiet.csv", 600, 1, None),
    }
    (root / "labels").mkdir()
    (root / "labels/combined_windows.json").write_text(json.dumps(labels))
    return root


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    """A profile for small files: windows of 16, the z-score baseline."""
    path = tmp_path / "small.toml"
    path.write_text('detector = "zscore"\n[settings]\nwindow_size = 16\nalert_open_after = 1\n')
    return path


def test_nab_corpus_through_the_cli_gives_a_complete_sane_report(
    nab_corpus, small_config, tmp_path, capsys
):
    report_path = tmp_path / "report.json"
    code = main(
        [
            "benchmark",
            "nab",
            "--data",
            str(nab_corpus),
            "--config",
            str(small_config),
            "--out",
            str(report_path),
            "--jobs",
            "1",
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "artificial" in printed and "real" in printed and "total" in printed
    assert "wall time" in printed and "NAB standard" in printed

    report = json.loads(report_path.read_text())
    assert report["benchmark"] == "nab"
    assert report["protocol"]["train_fraction"] == 0.15
    assert report["detector"] == "zscore"
    assert report["settings"]["window_size"] == 16
    assert report["settings"]["alert_open_after"] == 1
    assert report["model"] == {"kind": "zscore", "window": 16}
    assert report["files"] == 2 and report["failed"] == {} and report["skipped"] == []
    assert report["seconds"]["wall"] >= report["seconds"]["detect"] > 0
    evaluation = report["evaluation"]
    assert set(evaluation["per_file"]) == {"artificial/with_jump.csv", "real/quiet.csv"}
    assert set(evaluation["per_category"]) == {"artificial", "real"}
    total = evaluation["total"]
    assert total["windows"] == 1
    # An 8-sigma jump is found, early in its window.
    assert total["event_tp"] == 1 and total["event_recall"] == 1.0
    assert 0.0 <= total["event_precision"] <= 1.0 and 0.0 <= total["point_f1"] <= 1.0
    assert total["nab_standard"] > 50
    for key in ("nab_reward_low_FP_rate", "nab_reward_low_FN_rate", "point_precision"):
        assert key in total


def test_column_labels_skip_files_without_the_label_column(tmp_path, small_config):
    data = tmp_path / "SKAB" / "data"
    rng = np.random.default_rng(2)
    for name, labelled in (("valve/1.csv", True), ("anomaly-free/free.csv", False)):
        rows = 700
        values = rng.standard_normal((rows, 2)) + [5.0, 1.0]
        label = np.zeros(rows, dtype=int)
        label[500:600] = 1
        values[500:600, 1] -= 10.0
        frame = pd.DataFrame(
            {
                "datetime": pd.date_range(START, periods=rows, freq="1s").strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
                "Pressure": values[:, 0],
                "Flow": values[:, 1],
            }
        )
        if labelled:
            frame["anomaly"] = label
            frame["changepoint"] = 0
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(data / name, sep=";", index=False)

    report = run_benchmark(
        "skab", tmp_path / "SKAB", profile_file=small_config, jobs=1, progress=False
    )
    assert report.skipped == ["anomaly-free/free.csv"]
    assert [f.source.name for f in report.files] == ["1.csv"]
    assert report.protocol.train_rows == 400
    assert report.evaluation.total["point_f1"] > 0.8
    assert report.headline().startswith("point F1 ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent/NAB"], "no such folder"),
        (["--labels", "/nonexistent/windows.json"], "no such labels file"),
        (["--config", "/nonexistent/x.toml"], "no such profile file"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(nab_corpus, args, message, capsys):
    if "--data" not in args:
        args = ["--data", str(nab_corpus), *args]
    assert main(["benchmark", "nab", *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_data_folder_without_labels_says_to_give_them(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["benchmark", "nab", "--data", str(tmp_path), "--quiet"]) == 2
    assert "give one with --labels" in capsys.readouterr().err


def test_unknown_benchmark_and_detector_are_refused(nab_corpus):
    with pytest.raises(ConfigError, match="unknown benchmark"):
        run_benchmark("yahoo", nab_corpus)
    with pytest.raises(ConfigError, match="unknown detector"):
        run_benchmark("nab", nab_corpus, detector="forest")
    with pytest.raises(SystemExit):
        main(["benchmark", "nab", "--detector", "forest"])


def test_environment_beats_the_profile_and_arguments_beat_both(nab_corpus, small_config):
    env = {"STREAMAE_WINDOW_SIZE": "24", "STREAMAE_ALERT_OPEN_AFTER": "2"}
    report = run_benchmark(
        "nab",
        nab_corpus,
        profile_file=small_config,
        settings={"window_size": 20},
        jobs=1,
        progress=False,
        env=env,
    )
    assert report.settings["window_size"] == 20
    assert report.settings["alert_open_after"] == 2


def test_shipped_profiles_are_valid():
    for protocol in PROTOCOLS.values():
        profile = protocol_profile(None, protocol)
        assert profile.file is not None and profile.detector in {"conv", "lstm", "zscore"}


def test_one_skab_file_of_the_shared_data(shared_data, tmp_path):
    source = shared_data / "SKAB" / "data" / "valve1" / "1.csv"
    if not source.is_file():
        pytest.skip(f"{source} not present")
    data = tmp_path / "valve1"
    data.mkdir()
    # A link: SKAB (GPL-3.0) is read where it lies, never copied.
    (data / "1.csv").symlink_to(source.resolve())
    report = run_benchmark("skab", data, detector="zscore", jobs=1, progress=False)
    total = report.evaluation.total
    assert total["files"] == 1 and total["windows"] == 1
    assert total["event_recall"] == 1.0
    assert total["point_f1"] > 0.5


def test_unknown_training_option_is_refused_before_any_work(nab_corpus, tmp_path):
    path = tmp_path / "training.toml"
    path.write_text('detector = "conv"\n[training]\nlayerz = 2\n')
    with pytest.raises(ConfigError, match="unknown training option") as raised:
        run_benchmark("nab", nab_corpus, profile_file=path, progress=False)
    assert str(path) in str(raised.value)  # the error names the file to fix


def test_profile_settings_are_checked_with_the_environment_layered_on(nab_corpus, tmp_path):
    path = tmp_path / "fade.toml"
    path.write_text('detector = "zscore"\n[settings]\nalert_fade = 0.25\nalert_rearm = 0\n')
    with pytest.raises(ConfigError, match=f"needs 'alert_rearm' > 0.*{path}"):
        run_benchmark("nab", nab_corpus, detector="zscore", profile_file=path, env={})
    report = run_benchmark(
        "nab", nab_corpus, detector="zscore", profile_file=path, progress=False,
        env={"STREAMAE_ALERT_REARM": "2000"},
    )  # fmt: skip
    assert report.settings["alert_rearm"] == 2000 and report.settings["alert_fade"] == 0.25


@pytest.mark.parametrize("arch", ["conv", "lstm"])
def test_the_model_width_is_the_default_of_the_architecture_asked_for(arch):
    from streamae.training import DEFAULT_HIDDEN  # torch: only here

    options = DetectOptions(train_rows=100, arch=arch)
    assert model_config(Settings(window_size=16), options)["hidden"] == DEFAULT_HIDDEN[arch]
    wider = DetectOptions(train_rows=100, arch=arch, training=(("hidden", 8),))
    assert model_config(Settings(window_size=16), wider)["hidden"] == 8


@pytest.mark.parametrize(
    ("name", "value", "setting"), [("window", 8, "window_size"), ("device", "cpu", "device")]
)
def test_window_or_device_as_a_training_option_is_refused_naming_its_setting(name, value, setting):
    options = DetectOptions(train_rows=100, training=((name, value),))
    with pytest.raises(ConfigError) as raised:  # was a TypeError: "got multiple values"
        model_config(Settings(window_size=16), options)
    assert f"training option(s) {name}: set by the setting(s) {setting}, " in str(raised.value)


def no_detection(*args, **kwargs):
    raise AssertionError("detection ran; the mistake should have been found before it")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('epochs = "5"', "training option 'epochs' must be an integer, got '5'; remove the quotes"),
        ("lr = true", "training option 'lr' must be a number, got True"),
        ("seed = 99999999999999999999", f"training seed must be 0..{2**64 - 1}"),
    ],
)
def test_a_training_option_of_the_wrong_type_or_range_is_named_before_any_work(
    nab_corpus, tmp_path, monkeypatch, text, message
):
    monkeypatch.setattr("streamae.benchmark.detect_files", no_detection)
    path = tmp_path / "training.toml"
    path.write_text(f'detector = "conv"\n[training]\n{text}\n')
    with pytest.raises(ConfigError) as raised:
        run_benchmark("nab", nab_corpus, profile_file=path, progress=False)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_a_keep_that_is_a_file_is_refused_before_any_work(
    nab_corpus, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("streamae.benchmark.detect_files", no_detection)
    keep = tmp_path / "notes.txt"
    keep.write_text("mine\n")
    assert main(["benchmark", "nab", "--data", str(nab_corpus), "--keep", str(keep)]) == 2
    assert f"--keep {keep}: exists and is not a folder" in capsys.readouterr().err
    assert keep.read_text() == "mine\n"


def test_a_keep_holding_other_data_names_the_keep_option(
    nab_corpus, small_config, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr("streamae.benchmark.detect_files", no_detection)
    keep = tmp_path / "kept"
    mine = keep / "detections" / "real" / "quiet.csv"
    mine.parent.mkdir(parents=True)
    mine.write_text("ts,value\n1,2\n")
    args = ["--data", str(nab_corpus), "--config", str(small_config), "--keep", str(keep)]
    assert main(["benchmark", "nab", *args, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "exists and is not an output of detect" in err and "choose another --keep" in err
    assert mine.read_text() == "ts,value\n1,2\n"


def test_labelled_files_missing_from_the_corpus_are_warned_about(nab_corpus, small_config, caplog):
    labels = nab_corpus / "labels" / "combined_windows.json"
    windows = json.loads(labels.read_text())
    labels.write_text(json.dumps(windows | {"real/gone.csv": [], "real/lost.csv": []}))
    report = run_benchmark("nab", nab_corpus, profile_file=small_config, jobs=1, progress=False)
    assert "2 labelled file(s) not in" in caplog.text
    assert "real/gone.csv, real/lost.csv" in caplog.text
    assert report.evaluation.total["files"] == 2  # the files that are there are scored
