"""Which model scores which sensor: the map syntax and the loading errors."""

from __future__ import annotations

import pytest

from streamae.config import Settings
from streamae.exceptions import ArtifactError, ConfigError
from streamae.monitor.models import load_detectors, parse_model_map


def test_model_map_pairs_in_order():
    assert parse_model_map(" pump-*=models/pump , fan-?=/m/fan,") == [
        ("pump-*", "models/pump"),
        ("fan-?", "/m/fan"),
    ]
    assert parse_model_map("") == []


@pytest.mark.parametrize("text", ["pump-*", "=models/x", "pump-*=", "a=b,c"])
def test_a_malformed_model_map_entry_is_a_config_error(text):
    with pytest.raises(ConfigError, match="is not 'pattern=folder'"):
        parse_model_map(text)


def test_no_model_is_a_config_error_naming_the_option():
    with pytest.raises(ConfigError, match="--model MODEL_DIR"):
        load_detectors(Settings.load(env={}))


def test_a_missing_model_folder_is_an_artifact_error(tmp_path):
    settings = Settings.load(env={}, model_path=str(tmp_path / "nope"))
    with pytest.raises(ArtifactError, match="does not exist"):
        load_detectors(settings)


def test_the_map_is_checked_before_any_model_loads(tmp_path):
    settings = Settings.load(env={}, model_path=str(tmp_path / "nope"), model_map="oops")
    with pytest.raises(ConfigError, match="'oops'"):
        load_detectors(settings)
