"""The autoencoder modules and the detector wrapping them (no training needed here)."""

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from streamae.detectors import autoencoder
from streamae.detectors.autoencoder import (
    ARCHITECTURES,
    AutoencoderDetector,
    Scaler,
    resolve_device,
)
from streamae.exceptions import ModelError


def make_detector(arch="lstm", channels=("a", "b"), window=12, seed=0):
    torch.manual_seed(seed)
    module = ARCHITECTURES[arch](channels=len(channels), window=window, hidden=8, latent=3)
    scaler = Scaler(np.array([1.0, -2.0])[: len(channels)], np.array([2.0, 0.5])[: len(channels)])
    return AutoencoderDetector(module, arch, channels, scaler, np.array([0.1, 0.2]), device="cpu")


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize(("window", "layers"), [(16, 1), (9, 2), (64, 3), (2, 1)])
def test_modules_rebuild_the_input_shape_through_a_small_latent(arch, window, layers):
    module = ARCHITECTURES[arch](channels=3, window=window, hidden=8, latent=4, layers=layers)
    x = torch.randn(5, window, 3)
    latent = module.encode(x)
    assert latent.shape == (5, 4)
    assert module.decode(latent).shape == (5, window, 3)
    assert module(x).shape == (5, window, 3)
    assert module.hparams == {
        "channels": 3,
        "window": window,
        "hidden": 8,
        "latent": 4,
        "layers": layers,
    }


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_score_shapes_dtypes_and_score_is_mean_channel_error(arch, dtype):
    detector = make_detector(arch)
    windows = np.random.default_rng(1).normal(size=(7, 12, 2)).astype(dtype)
    scores, errors = detector.score(windows)
    assert scores.shape == (7,) and errors.shape == (7, 2)
    assert scores.dtype == np.float64 and errors.dtype == np.float64
    np.testing.assert_array_equal(scores, errors.mean(axis=1))
    assert (errors >= 0).all()


def test_score_matches_a_manual_forward_pass_in_scaled_units():
    detector = make_detector()
    windows = np.random.default_rng(2).normal(size=(4, 12, 2))
    x = torch.from_numpy(((windows - [1.0, -2.0]) / [2.0, 0.5]).astype(np.float32))
    with torch.no_grad():
        expected = ((detector.module(x) - x) ** 2).mean(dim=1).double().numpy()
    _, errors = detector.score(windows)
    np.testing.assert_allclose(errors, expected, rtol=1e-5)


def test_score_accepts_read_only_overlapping_views_and_is_pure():
    detector = make_detector()
    series = np.random.default_rng(3).normal(size=(40, 2))
    views = sliding_window_view(series, (12, 2))[:, 0]
    assert not views.flags.writeable
    first, _ = detector.score(views)
    second, _ = detector.score(np.ascontiguousarray(views))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(series, np.random.default_rng(3).normal(size=(40, 2)))


def test_chunked_scoring_equals_one_pass(monkeypatch):
    detector = make_detector()
    windows = np.random.default_rng(4).normal(size=(10, 12, 2))
    whole, _ = detector.score(windows)
    monkeypatch.setattr(autoencoder, "CHUNK_WINDOWS", 3)
    chunked, _ = detector.score(windows)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_empty_batch_gives_empty_scores():
    scores, errors = make_detector().score(np.empty((0, 12, 2)))
    assert scores.shape == (0,) and errors.shape == (0, 2)


@pytest.mark.parametrize("shape", [(3, 11, 2), (3, 12, 3), (12, 2)])
def test_wrong_window_shape_is_refused(shape):
    with pytest.raises(ModelError, match=r"this model scores \[B, 12, 2\]"):
        make_detector().score(np.zeros(shape))


def test_robust_scaler_ignores_outliers_and_survives_constant_channels():
    rng = np.random.default_rng(5)
    values = np.column_stack([rng.normal(10, 2, 4000), np.full(4000, 7.0), np.zeros(4000)])
    values[:40, 0] = 1e6  # 1% wild outliers
    values[:2, 2] = 1.0  # almost constant: IQR 0, std > 0
    scaler = Scaler.fit(values)
    assert scaler.center[0] == pytest.approx(10, abs=0.2)
    assert scaler.scale[0] == pytest.approx(2, rel=0.1)
    assert scaler.center[1] == 7.0 and scaler.scale[1] == 1.0
    assert scaler.scale[2] == pytest.approx(values[:, 2].std())
    assert np.isfinite(scaler.transform(values)).all()


def test_scaler_measures_a_quantised_channel_by_its_steps_not_its_ties():
    # Mostly 32 with a little rounding jitter, and steps of 1 in 9% of the rows:
    # the IQR is the jitter (0.001), which made one ordinary step ~1,000 sigmas.
    values = np.concatenate([[31.0] * 45, [32.0] * 500, [32.001] * 410, [33.0] * 45])[:, None]
    scale = Scaler.fit(values).scale[0]
    assert 0.05 < scale < 0.5
    assert abs(33.0 - Scaler.fit(values).center[0]) / scale < 20


def test_scaler_ignores_missing_values():
    values = np.array([[1.0], [np.nan], [3.0], [np.inf], [5.0]])
    assert Scaler.fit(values).center[0] == 3.0


def test_unknown_or_missing_device_is_refused():
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_device("auto").type in {"cpu", "cuda"}


def test_channel_names_must_match_the_module():
    module = ARCHITECTURES["lstm"](channels=2, window=12, hidden=8, latent=3)
    with pytest.raises(ModelError, match="2 input channels but 3 channel names"):
        AutoencoderDetector(module, "lstm", ("a", "b", "c"), Scaler.fit(np.ones((3, 2))), [])


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_score_tail_averages_the_last_readings_only(arch):
    torch.manual_seed(0)
    module = ARCHITECTURES[arch](channels=2, window=12, hidden=8, latent=3, tail=4)
    assert module.hparams["tail"] == 4
    scaler = Scaler(np.array([1.0, -2.0]), np.array([2.0, 0.5]))
    detector = AutoencoderDetector(module, arch, ("a", "b"), scaler, np.ones(2), device="cpu")
    assert detector.score_tail == 4
    windows = np.random.default_rng(2).normal(size=(4, 12, 2))
    x = torch.from_numpy(((windows - [1.0, -2.0]) / [2.0, 0.5]).astype(np.float32))
    with torch.no_grad():
        squared = ((detector.module(x) - x) ** 2).double().numpy()
    scores, errors = detector.score(windows)
    np.testing.assert_allclose(errors, squared[:, -4:].mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(scores, squared[:, -4:].mean(axis=(1, 2)), rtol=1e-5)


@pytest.mark.parametrize("tail", [-1, 13])
def test_a_score_tail_outside_the_window_is_refused(tail):
    with pytest.raises(ValueError, match="score tail"):
        ARCHITECTURES["conv"](channels=1, window=12, tail=tail)


def test_without_a_tail_the_whole_window_is_scored_and_hparams_are_unchanged():
    detector = make_detector("conv")
    assert detector.score_tail == 12 and "tail" not in detector.hyperparameters
