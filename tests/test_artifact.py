"""Model artifacts: exact round trip, tamper detection, no pickle, compatibility checks."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from streamae import artifact
from streamae.detectors.autoencoder import ARCHITECTURES, AutoencoderDetector, Scaler
from streamae.exceptions import ArtifactError
from streamae.tables import SensorSeries
from streamae.training import TrainConfig, train_detector

WINDOWS = np.random.default_rng(7).normal(size=(20, 16, 2))


@pytest.fixture(scope="module")
def trained() -> AutoencoderDetector:
    t = np.arange(200)
    values = np.column_stack([np.sin(t / 5), 10 + np.cos(t / 7)])
    series = SensorSeries("pump", t * 1000, values, ("p", "q"), None, Path("pump.csv"))
    config = TrainConfig(window=16, hidden=8, latent=3, epochs=1, device="cpu")
    return train_detector([series], config, progress=False)


def untrained(arch: str) -> AutoencoderDetector:
    torch.manual_seed(1)
    module = ARCHITECTURES[arch](channels=2, window=16, hidden=8, latent=3, layers=2)
    scaler = Scaler(np.array([0.5, -1.0]), np.array([2.0, 0.25]))
    return AutoencoderDetector(module, arch, ("p", "q"), scaler, np.array([0.1, 0.3]), device="cpu")


def test_save_then_load_gives_identical_scores_and_metadata(trained, tmp_path):
    folder = artifact.save(trained, tmp_path / "model")
    loaded = artifact.load(folder, device="cpu")
    expected_scores, expected_errors = trained.score(WINDOWS)
    scores, errors = loaded.score(WINDOWS)
    np.testing.assert_array_equal(scores, expected_scores)
    np.testing.assert_array_equal(errors, expected_errors)
    np.testing.assert_array_equal(loaded.normal_scores, trained.normal_scores)
    np.testing.assert_array_equal(loaded.scaler.center, trained.scaler.center)
    np.testing.assert_array_equal(loaded.scaler.scale, trained.scaler.scale)
    assert loaded.channels == ("p", "q") and loaded.window_size == 16
    assert loaded.info == trained.info
    assert loaded.version == trained.version


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_round_trips(arch, tmp_path):
    detector = untrained(arch)
    loaded = artifact.load(artifact.save(detector, tmp_path / arch), device="cpu")
    assert loaded.arch == arch and loaded.hyperparameters["layers"] == 2
    np.testing.assert_array_equal(loaded.score(WINDOWS)[0], detector.score(WINDOWS)[0])


def test_version_is_the_content_hash_and_stable(trained, tmp_path):
    before = trained.version
    artifact.save(trained, tmp_path / "a")
    artifact.save(trained, tmp_path / "b")
    doc = json.loads((tmp_path / "a" / "model.json").read_text())
    assert len(before) == 12 and doc["content_hash"].startswith(before)
    assert (tmp_path / "a" / "model.json").read_bytes() == (
        tmp_path / "b" / "model.json"
    ).read_bytes()
    assert untrained("lstm").version != untrained("conv").version


def test_model_json_describes_the_model(trained, tmp_path):
    doc = json.loads((artifact.save(trained, tmp_path / "m") / "model.json").read_text())
    assert doc["format"] == "streamae-model" and doc["format_version"] == 1
    assert doc["arch"] == "lstm" and doc["window_size"] == 16
    hyperparameters = dict(doc["hyperparameters"])
    # The memory of normal latent codes holds as many codes as training kept.
    assert hyperparameters.pop("memory") > 0
    assert hyperparameters == {"channels": 2, "window": 16, "hidden": 8, "latent": 3, "layers": 1}
    assert doc["channels"] == ["p", "q"]
    assert doc["training_data"]["rows"] == 200 and doc["training_data"]["files"] == ["pump.csv"]
    # Calibration scores: the validation windows, plus the remembered training windows.
    assert len(doc["normal_scores"]) >= doc["training"]["val_windows"] > 0
    assert set(doc["libraries"]) >= {"torch", "numpy", "streamae"}
    assert doc["created_at"].endswith("Z")


def test_flipped_weight_byte_is_refused(trained, tmp_path):
    folder = artifact.save(trained, tmp_path / "m")
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-5] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(ArtifactError, match=r"modified after it was saved \(hash mismatch\)"):
        artifact.load(folder)


def test_edited_number_in_json_is_refused(trained, tmp_path):
    folder = artifact.save(trained, tmp_path / "m")
    doc = json.loads((folder / "model.json").read_text())
    doc["scaler"]["scale"][0] *= 2
    (folder / "model.json").write_text(json.dumps(doc, indent=2))
    with pytest.raises(ArtifactError, match="modified after it was saved"):
        artifact.load(folder)


def test_reformatted_but_unchanged_json_still_loads(trained, tmp_path):
    folder = artifact.save(trained, tmp_path / "m")
    doc = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps(doc))
    assert artifact.load(folder).version == trained.version


def test_artifact_holds_no_pickle(trained, tmp_path, monkeypatch):
    folder = artifact.save(trained, tmp_path / "m")
    with safe_open(folder / "model.safetensors", framework="pt") as weights:
        assert set(weights.keys()) == set(trained.module.state_dict())
    raw = (folder / "model.safetensors").read_bytes()
    assert not raw.startswith((b"\x80", b"PK"))  # pickle protocol / torch.save zip

    def scalars(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from scalars(value)
        elif isinstance(node, list):
            for value in node:
                yield from scalars(value)
        else:
            yield node

    doc = json.loads((folder / "model.json").read_text())
    for value in scalars(doc):
        assert value is None or isinstance(value, bool | int | float | str)
        assert not (isinstance(value, str) and len(value) > 200)  # no encoded blobs

    def refuse(*args, **kwargs):
        raise AssertionError("pickle-based loading was used")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert artifact.load(folder).version == trained.version


def test_missing_or_broken_artifacts_are_refused_clearly(trained, tmp_path):
    with pytest.raises(ArtifactError, match="does not exist; train one"):
        artifact.load(tmp_path / "nowhere")
    (tmp_path / "data.csv").write_text("ts,value\n")
    with pytest.raises(ArtifactError, match="is a file; give the folder `streamae train --out`"):
        artifact.load(tmp_path / "data.csv")
    folder = artifact.save(trained, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ArtifactError, match="model.safetensors is missing"):
        artifact.load(folder)

    folder = artifact.save(trained, tmp_path / "j")
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        artifact.load(folder)

    folder = artifact.save(trained, tmp_path / "v")
    doc = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(ArtifactError, match="format version 99"):
        artifact.load(folder)

    (folder / "model.json").write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ArtifactError, match="not a streamae model"):
        artifact.load(folder)

    with pytest.raises(ArtifactError, match="is a file, not a folder"):
        artifact.save(trained, folder / "model.json")


def test_weights_that_do_not_fit_the_architecture_are_refused(trained, tmp_path):
    # A consistent (re-hashed) artifact whose weights belong to another model.
    folder = artifact.save(trained, tmp_path / "m")
    doc = json.loads((folder / "model.json").read_text())
    del doc["content_hash"]
    other = untrained("conv").module.state_dict()
    blob = safetensors.torch.save({k: v.contiguous() for k, v in other.items()})
    (folder / "model.safetensors").write_bytes(blob)
    doc["content_hash"] = artifact._hash(doc, blob)
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="do not fit architecture 'lstm'"):
        artifact.load(folder)


def test_save_refuses_only_folders_that_hold_other_data(trained, tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / ".gitkeep").write_text("")
    half = tmp_path / "half"  # a crash between the two files left the weights only
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"old")
    for folder in (kept, half):
        artifact.load(artifact.save(trained, folder))
    data = tmp_path / "data"
    data.mkdir()
    (data / "plant.csv").write_text("ts,value\n")
    with pytest.raises(ArtifactError, match="holds other files and no model"):
        artifact.save(trained, data)
    assert [p.name for p in data.iterdir()] == ["plant.csv"]
