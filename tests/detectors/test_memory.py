"""The memory of normal codes: nearest-item recall, weights and artifacts with and without it."""

import numpy as np
import pytest
import torch

from streamae import artifact
from streamae.detectors.autoencoder import ARCHITECTURES, AutoencoderDetector, Scaler
from streamae.detectors.memory import recall


def test_recall_returns_the_nearest_item_whatever_the_batch():
    memory = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    codes = torch.tensor([[0.9, 0.2], [0.1, 4.0], [-1.0, -1.0]])
    assert recall(codes, memory).tolist() == [[1.0, 0.0], [0.0, 5.0], [0.0, 0.0]]
    assert recall(codes[1:2], memory).tolist() == [[0.0, 5.0]]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_module_with_a_memory_decodes_the_nearest_remembered_code(arch):
    torch.manual_seed(0)
    module = ARCHITECTURES[arch](channels=2, window=8, hidden=8, latent=3).eval()
    assert module.memory is None and "memory" not in module.state_dict()
    x = torch.randn(4, 8, 2)
    codes = torch.randn(5, 3)
    module.set_memory(codes)
    assert module.hparams["memory"] == 5
    assert torch.equal(module.state_dict()["memory"], codes)
    with torch.no_grad():
        expected = module.decode(recall(module.encode(x), codes))
        assert torch.equal(module(x), expected)
    with pytest.raises(ValueError, match="memory codes"):
        module.set_memory(torch.empty(0, 3))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_artifact_round_trip_keeps_the_memory_and_the_scores(arch, tmp_path):
    torch.manual_seed(1)
    module = ARCHITECTURES[arch](channels=1, window=6, hidden=4, latent=2)
    module.set_memory(torch.randn(7, 2))
    detector = AutoencoderDetector(
        module, arch, ("v",), Scaler(np.zeros(1), np.ones(1)), np.linspace(0, 1, 20), device="cpu"
    )
    artifact.save(detector, tmp_path / "model")
    loaded = artifact.load(tmp_path / "model", device="cpu")
    assert loaded.hyperparameters["memory"] == 7
    assert loaded.version == detector.version
    windows = np.random.default_rng(2).normal(size=(9, 6, 1))
    np.testing.assert_array_equal(loaded.score(windows)[0], detector.score(windows)[0])


def test_artifact_round_trip_keeps_the_score_tail(tmp_path):
    torch.manual_seed(1)
    module = ARCHITECTURES["conv"](channels=1, window=6, hidden=4, latent=2, tail=2)
    detector = AutoencoderDetector(
        module, "conv", ("v",), Scaler(np.zeros(1), np.ones(1)), np.linspace(0, 1, 20), device="cpu"
    )
    artifact.save(detector, tmp_path / "model")
    loaded = artifact.load(tmp_path / "model", device="cpu")
    assert loaded.score_tail == 2
    windows = np.random.default_rng(2).normal(size=(9, 6, 1))
    np.testing.assert_array_equal(loaded.score(windows)[0], detector.score(windows)[0])
