"""Training: splits, scaler, early stopping, determinism, and that anomalies score higher."""

from pathlib import Path

import numpy as np
import pytest
import torch

from streamae.exceptions import ConfigError, InputError, ModelError
from streamae.tables import SensorSeries
from streamae.training import TrainConfig, train_detector

TINY = dict(window=16, hidden=8, latent=4, epochs=2, batch_size=64, device="cpu")


def sine(n=400, channels=("value",), sensor_id="s1", period=20, noise=0.05, seed=0, level=0.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    columns = [
        level + np.sin(2 * np.pi * t / period + k) + noise * rng.normal(size=n)
        for k in range(len(channels))
    ]
    return SensorSeries(
        sensor_id,
        t * 1000,
        np.column_stack(columns),
        tuple(channels),
        None,
        Path(f"{sensor_id}.csv"),
    )


def test_a_spike_scores_higher_than_normal_windows_after_brief_training():
    series = sine(n=600)
    detector = train_detector([series], TrainConfig(**{**TINY, "epochs": 5}), progress=False)
    normal = np.stack([series.values[i : i + 16] for i in range(400, 580, 5)])
    spiked = normal.copy()
    spiked[:, 8, 0] += 4.0
    normal_scores, _ = detector.score(normal)
    spiked_scores, _ = detector.score(spiked)
    assert spiked_scores.min() > normal_scores.max()
    assert spiked_scores.min() > np.percentile(detector.normal_scores, 99)


@pytest.mark.parametrize("arch", ["lstm", "conv"])
def test_same_seed_gives_identical_weights_and_scores(arch):
    config = TrainConfig(**TINY, arch=arch, noise_sigma=0.1, l1_latent=0.01, seed=3)
    first = train_detector([sine()], config, progress=False)
    second = train_detector([sine()], config, progress=False)
    for (name, a), (_, b) in zip(
        first.module.state_dict().items(), second.module.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    np.testing.assert_array_equal(first.normal_scores, second.normal_scores)
    other = train_detector([sine()], TrainConfig(**TINY, arch=arch, seed=4), progress=False)
    assert not np.array_equal(first.normal_scores, other.normal_scores)


def test_normal_scores_are_the_validation_loss_of_the_kept_weights():
    # Without a memory; with one, see test_memory_rebuilds_from_the_nearest_training_code.
    detector = train_detector([sine(n=300)], TrainConfig(**TINY, memory=0), progress=False)
    run = detector.info["training"]
    assert len(detector.normal_scores) == run["val_windows"]
    assert detector.normal_scores.dtype == np.float64
    assert detector.normal_scores.mean() == pytest.approx(run["best_val_loss"], rel=1e-4)
    assert run["best_epoch"] <= run["epochs_run"] <= 2


def test_early_stopping_keeps_the_best_epoch():
    config = TrainConfig(**{**TINY, "epochs": 40, "patience": 1, "lr": 0.05})
    run = train_detector([sine(n=120)], config, progress=False).info["training"]
    assert run["epochs_run"] == run["best_epoch"] + 1 < 40


def test_windows_never_span_two_series_and_validation_is_the_tail():
    # Three series of 19 rows give 4 windows of 16 each (3 train, 1 validation); windows
    # across the boundaries would give more.
    series = [sine(n=19, sensor_id=name, seed=k) for k, name in enumerate("abc")]
    run = train_detector(series, TrainConfig(**TINY), progress=False).info["training"]
    assert (run["train_windows"], run["val_windows"]) == (9, 3)


def test_validation_is_kept_apart_from_training_rows_when_there_is_room():
    # 200 rows → 185 windows: 37 validation, a 15-window gap, 133 training.
    run = train_detector([sine(n=200)], TrainConfig(**TINY), progress=False).info["training"]
    assert (run["train_windows"], run["val_windows"]) == (133, 37)


def test_stride_caps_the_number_of_training_windows():
    config = TrainConfig(**TINY, max_windows=100)
    run = train_detector([sine(n=1000)], config, progress=False).info["training"]
    assert run["stride"] == 8
    assert run["train_windows"] <= 100


def test_scaler_is_fitted_on_training_rows_only():
    series = sine(n=400)
    values = series.values.copy()
    values[-80:] += 1000.0  # the validation tail sits far away
    shifted = SensorSeries("s1", series.ts_ms, values, series.channels, None, series.source)
    # No memory: its held-out training windows would join the normal scores.
    detector = train_detector([shifted], TrainConfig(**TINY, memory=0), progress=False)
    assert abs(detector.scaler.center[0]) < 0.5
    assert detector.normal_scores.min() > 1000  # validation windows are far from normal


def test_windows_with_missing_values_are_left_out():
    series = sine(n=300)
    values = series.values.copy()
    values[50, 0] = np.nan
    holed = SensorSeries("s1", series.ts_ms, values, series.channels, None, series.source)
    run = train_detector([holed], TrainConfig(**TINY), progress=False).info["training"]
    assert run["train_windows"] == 213 - 16
    assert np.isfinite(run["best_val_loss"])


def test_a_channel_without_values_names_the_first_few_of_many_files():
    series = [sine(channels=("a", "b"), sensor_id=f"s{i:02d}") for i in range(12)]
    for one in series:
        one.values[:, 1] = np.nan
    with pytest.raises(InputError) as raised:
        train_detector(series, TrainConfig(**TINY), progress=False)
    assert str(raised.value).startswith(
        "s00.csv, s01.csv, s02.csv, s03.csv, s04.csv and 7 more: channel 'b' has no finite"
    )


def test_training_data_summary_records_rows_sensors_files_and_hash():
    series = [
        sine(n=100, channels=("x", "y"), sensor_id="a"),
        sine(n=120, channels=("x", "y"), sensor_id="b"),
    ]
    detector = train_detector(series, TrainConfig(**TINY), progress=False)
    data = detector.info["training_data"]
    assert data["rows"] == 220 and data["sensors"] == 2
    assert data["files"] == ["a.csv", "b.csv"]
    assert len(data["sha256"]) == 64
    assert detector.channels == ("x", "y")
    assert detector.info["training"]["config"]["window"] == 16


def test_series_with_different_channels_are_refused():
    series = [sine(channels=("x",), sensor_id="a"), sine(channels=("y",), sensor_id="b")]
    with pytest.raises(ModelError, match=r"same channels.*'a'.*\['x'\].*'b'.*\['y'\]"):
        train_detector(series, TrainConfig(**TINY), progress=False)


def test_too_few_rows_says_how_many_are_needed():
    with pytest.raises(ModelError, match="at least 19 rows and the longest here has 18"):
        train_detector([sine(n=18)], TrainConfig(**TINY), progress=False)
    with pytest.raises(ModelError, match="no training data"):
        train_detector([], TrainConfig(**TINY), progress=False)


@pytest.mark.parametrize(
    "bad",
    [
        {"arch": "gru"},
        {"window": 1},
        {"epochs": 0},
        {"lr": 0.0},
        {"val_fraction": 1.0},
        {"noise_sigma": -1.0},
        {"stride": 0},
        {"device": "gpu"},
        {"score_tail": -1},
        {"window": 16, "score_tail": 17},
    ],
)
def test_invalid_config_is_refused(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_memory_rebuilds_from_the_nearest_training_code():
    series = sine(n=300)
    config = TrainConfig(**TINY, memory=50)
    detector = train_detector([series], config, progress=False)
    run = detector.info["training"]
    assert detector.hyperparameters["memory"] == run["memory"] == 50
    assert detector.module.memory.shape == (50, TINY["latent"])
    # Normal scores: each remembered window (training and validation) held out.
    assert len(detector.normal_scores) == 50
    plain = train_detector([series], TrainConfig(**TINY, memory=0), progress=False)
    windows = np.stack([series.values[i : i + 16] for i in range(0, 200, 9)])
    x = torch.from_numpy(detector.scaler.transform(windows))
    with torch.no_grad():
        codes = detector.module.encode(x)
        nearest = torch.cdist(codes, detector.module.memory).argmin(dim=1)
        expected = ((detector.module.decode(detector.module.memory[nearest]) - x) ** 2).mean(dim=1)
    np.testing.assert_allclose(detector.score(windows)[1], expected.double().numpy(), rtol=1e-5)
    # Same weights apart from the memory: the memory is what changes the scores.
    for name, weights in plain.module.state_dict().items():
        assert torch.equal(weights, detector.module.state_dict()[name]), name


def test_a_score_tail_scores_and_calibrates_on_the_last_readings():
    series = sine(n=300)
    config = TrainConfig(**TINY, memory=50, score_tail=4)
    detector = train_detector([series], config, progress=False)
    assert detector.score_tail == 4 == detector.hyperparameters["tail"]
    whole = train_detector([series], TrainConfig(**TINY, memory=50), progress=False)
    # Same weights and memory; only the scored readings differ.
    for name, weights in whole.module.state_dict().items():
        assert torch.equal(weights, detector.module.state_dict()[name]), name
    windows = np.stack([series.values[i : i + 16] for i in range(0, 200, 9)])
    x = torch.from_numpy(detector.scaler.transform(windows))
    with torch.no_grad():
        squared = ((detector.module(x) - x) ** 2).double().numpy()
    np.testing.assert_allclose(
        detector.score(windows)[0], squared[:, -4:].mean(axis=(1, 2)), rtol=1e-5
    )
    # The calibration holds out each remembered window, scored on its last 4 readings too.
    assert len(detector.normal_scores) == len(whole.normal_scores) == 50
    assert not np.allclose(detector.normal_scores, whole.normal_scores)
