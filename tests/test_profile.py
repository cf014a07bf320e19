"""Detection profiles (``--config TOML``): what the benchmark measured is what detect runs."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streamae import artifact
from streamae.benchmark import PROFILES_DIR
from streamae.cli import main
from streamae.config import Settings
from streamae.detect import DetectOptions, detect_path
from streamae.exceptions import ConfigError, InputError
from streamae.profile import (
    Profile,
    choose_detector,
    layered_settings,
    load_profile,
    model_mismatches,
)

PROFILE = """\
detector = "conv"

[settings]
window_size = 16
threshold_policy = "calibrated"
threshold_margin = 1.5
alert_open_after = 2

[training]
epochs = 2
hidden = 8
latent = 2
score_tail = 4
seed = 3
"""


@pytest.fixture(autouse=True)
def no_streamae_environment(monkeypatch):
    for name in [n for n in os.environ if n.startswith("STREAMAE_")]:
        monkeypatch.delenv(name)


def write_profile(folder: Path, text: str = PROFILE, name: str = "profile.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def write_csv(path: Path, rows: int = 700) -> Path:
    """Two noisy channels with a burst of +6 sigma at row 500; one row per second."""
    values = np.random.default_rng(0).standard_normal((rows, 2)) + [10.0, 50.0]
    values[500:530] += 6.0
    stamps = pd.date_range("2026-01-01", periods=rows, freq="1s").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"timestamp": stamps, "a": values[:, 0], "b": values[:, 1]}).to_csv(
        path, index=False
    )
    return path


def detect_cli(source: Path, out: Path, *args: str) -> pd.DataFrame:
    assert main(["detect", str(source), "--out", str(out), "--train-rows", "300", *args,
                 "--jobs", "1", "--quiet"]) == 0  # fmt: skip
    return pd.read_csv(out)


def test_the_profile_sits_between_the_defaults_and_the_environment():
    profile = Profile("p.toml", "conv", settings={"window_size": 16, "alert_open_after": 5})
    assert layered_settings(Profile()).window_size == Settings().window_size
    assert layered_settings(profile, env={}).window_size == 16
    from_env = layered_settings(profile, env={"STREAMAE_WINDOW_SIZE": "24"})
    assert (from_env.window_size, from_env.alert_open_after) == (24, 5)
    explicit = layered_settings(profile, {"window_size": 20}, env={"STREAMAE_WINDOW_SIZE": "24"})
    assert explicit.window_size == 20


def test_a_bad_value_from_the_profile_names_the_file_and_one_from_the_environment_does_not():
    profile = Profile("plant.toml", "conv", settings={"alert_open_after": 0})
    with pytest.raises(
        ConfigError, match=r"alert_open_after.*\(settings: plant\.toml \[settings\]"
    ):
        layered_settings(profile, env={})
    profile = Profile("plant.toml", "conv", settings={"window_size": 16})
    with pytest.raises(ConfigError, match="STREAMAE_ALERT_OPEN_AFTER") as raised:
        layered_settings(profile, env={"STREAMAE_ALERT_OPEN_AFTER": "0"})
    assert "plant.toml" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("detector = [", "not valid TOML"),
        ('detector = "conv"\ncolour = 1', "unknown key"),
        ('detector = "conv"\ntraining = 3', "'training' must be a table"),
        ("[settings]\nwindow_size = 16", "detector is missing; set detector = one of"),
        ('detector = "forest"', "detector is 'forest'"),
        ('detector = ["conv"]', "detector is ['conv']"),
        ('detector = "conv"\n[settings]\nwindow = 16', "unknown setting"),
        ('detector = "conv"\n[settings]\nwindow_size = "32"', "must be int, got '32'; remove"),
        ('detector = "conv"\n[settings]\nalert_open_after = true', "must be int, got True"),
        ('detector = "conv"\n[settings]\nsasl_password = "x"', "STREAMAE_SASL_PASSWORD instead"),
        ('detector = "conv"\n[training]\ndevice = "cpu"', "set them there"),
        ('detector = "lstm"\n[training]\narch = "conv"', "from detector"),
    ],
)
def test_profile_mistakes_are_named_with_the_file(tmp_path, text, message):
    path = write_profile(tmp_path, text)
    with pytest.raises(InputError, match=re.escape(message)) as raised:
        load_profile(path)
    assert str(path) in str(raised.value)


def test_a_missing_profile_or_a_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="no such profile file"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(InputError, match="is a folder"):
        load_profile(tmp_path)


@pytest.mark.parametrize(
    ("profile", "options", "expected"),
    [
        (None, (None, None), ("autoencoder", None)),
        ("conv", (None, None), ("autoencoder", "conv")),
        ("zscore", (None, None), ("zscore", None)),
        ("conv", ("zscore", None), ("zscore", None)),
        ("zscore", (None, "conv"), ("autoencoder", "conv")),
        ("zscore", ("autoencoder", None), ("autoencoder", None)),
        ("conv", (None, "lstm"), ("autoencoder", "lstm")),
    ],
)
def test_options_choose_the_detector_over_the_profile(profile, options, expected):
    assert choose_detector(Profile("p.toml", profile), *options) == expected


def test_the_shipped_profiles_make_the_same_choices_for_both_corpora():
    nab, skab = (load_profile(PROFILES_DIR / f"{name}.toml") for name in ("nab", "skab"))
    assert nab.detector == skab.detector == "conv"
    assert dict(nab.settings) == dict(skab.settings) and nab.settings["window_size"] == 32
    assert dict(nab.training) == dict(skab.training)
    assert layered_settings(nab, env={}).threshold_policy == "calibrated"


def test_detect_with_a_profile_runs_exactly_the_profile_s_choices(tmp_path):
    source = write_csv(tmp_path / "run.csv")
    profiled = detect_cli(
        source, tmp_path / "profiled.csv", "--config", str(write_profile(tmp_path))
    )

    profile = load_profile(tmp_path / "profile.toml")
    options = DetectOptions(train_rows=300, arch="conv", training=tuple(profile.training.items()))
    settings = Settings.load({}, **profile.settings)
    detect_path(source, tmp_path / "by-hand.csv", settings, options, jobs=1, progress=False)
    pd.testing.assert_frame_equal(profiled, pd.read_csv(tmp_path / "by-hand.csv"))

    # The calibrated bar is one number; without the profile the rolling bar moves.
    assert profiled["threshold"].dropna().nunique() == 1
    plain = detect_cli(source, tmp_path / "plain.csv", "--window", "16", "--epochs", "2")
    assert plain["threshold"].dropna().nunique() > 1


def test_an_option_wins_over_the_profile_and_keeps_the_rest_of_it(tmp_path):
    source = write_csv(tmp_path / "run.csv")
    profile = str(write_profile(tmp_path))
    overridden = detect_cli(source, tmp_path / "z.csv", "--config", profile, "--detector", "zscore")
    zscore_profile = write_profile(
        tmp_path, PROFILE.replace('"conv"', '"zscore"').split("[training]")[0], "zscore.toml"
    )
    from_profile = detect_cli(source, tmp_path / "z2.csv", "--config", str(zscore_profile))
    pd.testing.assert_frame_equal(overridden, from_profile)
    conv = detect_cli(source, tmp_path / "conv.csv", "--config", profile)
    assert not np.allclose(overridden["score"].dropna(), conv["score"].dropna())


def test_a_bad_training_value_in_the_profile_is_named_before_any_work(tmp_path, capsys):
    source = write_csv(tmp_path / "run.csv")
    profile = write_profile(tmp_path, PROFILE.replace("epochs = 2", 'epochs = "two"'))
    out = tmp_path / "out.csv"
    code = main(["detect", str(source), "--out", str(out), "--train-rows", "300",
                 "--config", str(profile), "--quiet"])  # fmt: skip
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "epochs" in err and f"{profile} [training]" in err and "Traceback" not in err


def train_cli(data: Path, out: Path, *args: str) -> dict:
    assert main(["train", "--input", str(data), "--out", str(out), "--quiet", *args]) == 0
    return json.loads((out / "model.json").read_text())


def test_train_with_a_profile_takes_its_detector_training_and_window(tmp_path):
    data = write_csv(tmp_path / "normal.csv", rows=300)
    doc = train_cli(data, tmp_path / "model", "--config", str(write_profile(tmp_path)))
    config = doc["training"]["config"]
    assert doc["arch"] == "conv" and config["window"] == 16
    assert (config["epochs"], config["hidden"], config["latent"]) == (2, 8, 2)
    assert (doc["hyperparameters"]["tail"], config["seed"]) == (4, 3)


def test_train_options_win_over_the_profile(tmp_path):
    data = write_csv(tmp_path / "normal.csv", rows=300)
    args = ["--config", str(write_profile(tmp_path)), "--arch", "lstm", "--epochs", "1"]
    doc = train_cli(data, tmp_path / "model", *args, "--window", "12", "--score-tail", "0")
    config = doc["training"]["config"]
    assert doc["arch"] == "lstm" and (config["window"], config["epochs"]) == (12, 1)
    assert (config["latent"], config["score_tail"]) == (2, 0)  # the rest stays the profile's


def test_train_refuses_a_z_score_profile_with_a_way_out(tmp_path, capsys):
    data = write_csv(tmp_path / "normal.csv", rows=300)
    profile = write_profile(tmp_path, 'detector = "zscore"\n')
    out = tmp_path / "model"
    args = ["train", "--input", str(data), "--out", str(out), "--config", str(profile)]
    assert main([*args, "--quiet"]) == 2 and not out.exists()
    err = capsys.readouterr().err
    assert "is not an autoencoder" in err and "--arch" in err and "Traceback" not in err


def test_the_environment_wins_over_the_profile_in_a_command(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMAE_WINDOW_SIZE", "24")
    data = write_csv(tmp_path / "normal.csv", rows=300)
    doc = train_cli(data, tmp_path / "model", "--config", str(write_profile(tmp_path)))
    assert doc["training"]["config"]["window"] == 24  # the profile says 16


def test_an_autoencoder_option_overrides_a_z_score_profile_in_detect(tmp_path):
    source = write_csv(tmp_path / "run.csv")
    zscore = str(write_profile(tmp_path, 'detector = "zscore"\n[settings]\nwindow_size = 16\n'))
    plain = detect_cli(source, tmp_path / "z.csv", "--config", zscore)
    trained = detect_cli(source, tmp_path / "ae.csv", "--config", zscore, "--epochs", "1")
    assert not np.allclose(plain["score"].dropna(), trained["score"].dropna())


def test_a_model_trained_otherwise_than_the_profile_is_warned_about(tmp_path, caplog, monkeypatch):
    source = write_csv(tmp_path / "run.csv")
    profile = write_profile(tmp_path)
    train_cli(source, tmp_path / "lstm", "--window", "8", "--epochs", "1", "--arch", "lstm")
    train_cli(source, tmp_path / "same", "--config", str(profile))
    detect_cli(
        source, tmp_path / "a.csv", "--model", str(tmp_path / "lstm"), "--config", str(profile)
    )
    assert "window 8 (the profile's: 16)" in caplog.text
    assert "detector lstm (the profile's: conv)" in caplog.text
    assert "hidden 32 (the profile's: 8)" in caplog.text  # the model's size, too
    assert "latent 16 (the profile's: 2)" in caplog.text
    caplog.clear()
    loads = []
    real_load = artifact.load
    monkeypatch.setattr(artifact, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    detect_cli(
        source, tmp_path / "b.csv", "--model", str(tmp_path / "same"), "--config", str(profile)
    )
    assert "was not trained with profile" not in caplog.text
    assert len(loads) == 1  # the model checked against the profile is the one that scores


def test_the_monitor_refuses_a_bad_profile_before_connecting(tmp_path, capsys):
    bad = write_profile(tmp_path, "[settings]\nwindow_size = 16\n")
    code = main(["monitor", "--model", str(tmp_path), "--config", str(bad),
                 "--bootstrap-servers", "127.0.0.1:1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "detector is missing" in err and "Traceback" not in err


def test_a_z_score_profile_names_an_autoencoder_model_as_a_mismatch(tmp_path):
    source = write_csv(tmp_path / "run.csv")
    train_cli(source, tmp_path / "model", "--config", str(write_profile(tmp_path)))
    model = artifact.load(tmp_path / "model")
    zscore = Profile("z.toml", "zscore", settings={"window_size": 16})
    assert model_mismatches(zscore, model) == ["detector conv (the profile's: zscore)"]
    assert model_mismatches(load_profile(tmp_path / "profile.toml"), model) == []
