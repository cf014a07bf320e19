"""Rolling per-sensor thresholds; ``make_threshold`` picks the policy from Settings.

The contract is in ``base.py``; ``robust`` (median + k·MAD) and ``quantile``
are the two rolling policies, ``calibrated`` the quantile bar of the normal
scores held fixed (``Settings.threshold_policy``).
"""

from __future__ import annotations

import numpy as np

from streamae.config import Settings
from streamae.thresholds.base import Threshold
from streamae.thresholds.calibrated import CalibratedThreshold
from streamae.thresholds.quantile import QuantileThreshold
from streamae.thresholds.robust import RobustThreshold

__all__ = [
    "CalibratedThreshold",
    "QuantileThreshold",
    "RobustThreshold",
    "Threshold",
    "make_threshold",
]


def make_threshold(settings: Settings, normal_scores: np.ndarray) -> Threshold:
    """A new threshold of ``settings.threshold_policy``, warm-started from ``normal_scores``."""
    if settings.threshold_policy == "robust":
        return RobustThreshold(settings.threshold_window, settings.threshold_k, normal_scores)
    if settings.threshold_policy == "quantile":
        return QuantileThreshold(
            settings.threshold_window,
            settings.threshold_quantile,
            settings.threshold_margin,
            normal_scores=normal_scores,
        )
    if settings.threshold_policy == "calibrated":
        return CalibratedThreshold(
            settings.threshold_quantile, settings.threshold_margin, normal_scores
        )
    raise ValueError(f"unknown threshold policy {settings.threshold_policy!r}")
