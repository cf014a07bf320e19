"""Which model scores which sensor: a default model plus sensor-id patterns.

The map is ``pattern=folder`` pairs separated by commas; patterns are shell-style
(``fnmatch``) and the first match wins; other sensors use the default model.

>>> parse_model_map("pump-*=models/pump, fan-?=models/fan")
[('pump-*', 'models/pump'), ('fan-?', 'models/fan')]
"""

from __future__ import annotations

import logging

from streamae import artifact
from streamae.config import Settings
from streamae.detectors.base import Detector
from streamae.exceptions import ConfigError
from streamae.pipeline import DetectorRegistry

log = logging.getLogger(__name__)


def parse_model_map(text: str) -> list[tuple[str, str]]:
    """``'pattern=folder,pattern=folder'`` → ``[(pattern, folder), ...]``, in order."""
    routes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        pattern, sep, folder = item.partition("=")
        if not sep or not pattern.strip() or not folder.strip():
            raise ConfigError(
                f"model map entry {item!r} is not 'pattern=folder'; "
                "example: --model-map 'pump-*=models/pump,fan-*=models/fan'"
            )
        routes.append((pattern.strip(), folder.strip()))
    return routes


def load_detectors(settings: Settings) -> DetectorRegistry:
    """Load the default model (``settings.model_path``) and the mapped ones (``model_map``)."""
    if not settings.model_path:
        raise ConfigError(
            "no model given: pass --model MODEL_DIR (a folder written by `streamae train`) "
            f"or set {Settings.env_var('model_path')}"
        )
    routes = parse_model_map(settings.model_map)  # a typo fails before any model loads
    loaded: dict[str, Detector] = {}

    def load(folder: str) -> Detector:
        if folder not in loaded:
            loaded[folder] = artifact.load(folder, device=settings.device)
            log.info("model %s: version %s", folder, loaded[folder].version)
        return loaded[folder]

    default = load(settings.model_path)
    return DetectorRegistry(default, [(pattern, load(folder)) for pattern, folder in routes])
