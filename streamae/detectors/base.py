"""The detector contract: a trained model that scores windows.

A detector turns a batch of raw (unscaled) windows ``[B, W, C]`` into a score
per window (higher = more anomalous) and the per-channel part of that score.
Scoring never changes state. Detectors are made by training (``streamae.training``)
or by loading an artifact (``streamae.artifact``), never learn while scoring. A
detector may offer a per-sensor memory (``sensor_memory``) that the *pipeline*
fills with a sensor's normal windows; it is sensor state, like a threshold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from streamae.exceptions import InputError


class Detector(ABC):
    """Scores windows of ``window_size`` readings over ``channels``."""

    #: Readings per window.
    window_size: int
    #: Channel names, in the order of the windows' last axis.
    channels: tuple[str, ...]
    #: Identifies the trained model (the artifact's content hash).
    version: str
    #: Window scores on held-back normal data: the threshold's warm start.
    normal_scores: np.ndarray

    @abstractmethod
    def score(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score ``windows`` (float ``[B, W, C]``, raw units).

        Returns ``(scores [B], channel_errors [B, C])`` as float64, where
        ``scores == channel_errors.mean(axis=1)``.
        """

    def sensor_memory(self, size: int, block: int, delay: int = 0) -> Any | None:
        """A memory for one sensor's normal windows (``size`` codes, each joining ``delay``
        windows later at the end of a block of ``block``), or None: this detector cannot
        rebuild from one (the default)."""
        return None

    def score_remembering(
        self, windows: np.ndarray, memories: Sequence[Any | None]
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """``score``, each window also rebuilt from ``memories[i]`` (its sensor's memory's
        ``items()``, or None); returns the windows' codes too, for the memories to learn.

        Only detectors whose ``sensor_memory`` returns a memory implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} has no sensor memory")


def finite_training_values(values: np.ndarray) -> np.ndarray:
    """``values`` ``[N, C]`` with every non-finite entry as NaN (to be ignored when fitting).

    Raises ``InputError`` if a channel has no finite value at all.
    """
    values = np.where(np.isfinite(values), values, np.nan)
    if np.isnan(values).all(axis=0).any():
        raise InputError("a channel has no finite training values; drop it with --columns")
    return values
