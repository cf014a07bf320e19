"""A trivial, deterministic baseline detector: squared z-scores against training statistics.

Fast enough for end-to-end tests in milliseconds, and a sanity baseline for the
autoencoder: a window's channel error is the mean squared z-score of its last
``tail`` readings, its score the mean over channels.

>>> import numpy as np
>>> from streamae.tables import SensorSeries
>>> ts = np.arange(100, dtype=np.int64)
>>> values = np.sin(ts / 5.0)[:, None]
>>> det = ZScoreDetector.fit([SensorSeries("s", ts, values, ("value",), None, None)], 8)
>>> bool(det.score(np.full((1, 8, 1), 5.0))[0][0] > det.normal_scores.max())
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from streamae.detectors.base import Detector, finite_training_values
from streamae.exceptions import InputError, ModelError
from streamae.tables import SensorSeries
from streamae.thresholds.base import check_normal_scores

# A constant channel would otherwise divide by zero; any change from the
# training constant is then (correctly) a very large z-score.
MIN_STD = 1e-6
# Scoring the training windows in chunks bounds memory on long series.
_CHUNK = 4096


class ZScoreDetector(Detector):
    """Scores a window by how far its last ``tail`` readings are from the training mean."""

    def __init__(
        self,
        channels: Sequence[str],
        window_size: int,
        mean: np.ndarray,
        std: np.ndarray,
        normal_scores: np.ndarray,
        tail: int | None = None,
    ) -> None:
        self.channels = tuple(channels)
        self.window_size = int(window_size)
        self.tail = self.window_size if tail is None else int(tail)
        if not 0 < self.tail <= self.window_size:
            raise ModelError(f"tail must be in 1..{self.window_size}, got {self.tail}")
        self.mean = np.asarray(mean, dtype=np.float64).reshape(len(self.channels))
        self.std = np.maximum(
            np.asarray(std, dtype=np.float64).reshape(len(self.channels)), MIN_STD
        )
        self.normal_scores = np.asarray(normal_scores, dtype=np.float64)
        self.version = self._hash()

    @classmethod
    def fit(
        cls, series_list: Sequence[SensorSeries], window_size: int, tail: int | None = None
    ) -> ZScoreDetector:
        """Fit per-channel mean/std on all rows; normal scores from every training window.

        Missing (non-finite) values are ignored, and so are the windows holding one.
        """
        if not series_list:
            raise InputError("no training series given")
        channels = series_list[0].channels
        for series in series_list:
            if series.channels != channels:
                raise InputError(
                    f"sensor {series.sensor_id!r} has channels {list(series.channels)}, "
                    f"expected {list(channels)} like the other training series"
                )
        usable = [s for s in series_list if len(s) >= window_size]
        if not usable:
            longest = max(len(s) for s in series_list)
            raise InputError(
                f"training needs at least {window_size} rows (one window) for one sensor; "
                f"the longest training series has {longest}"
            )
        values = finite_training_values(
            np.concatenate([s.values for s in series_list]),
            channels,
            [s.source for s in series_list],
        )
        # Huge finite values (1e308) overflow the sums: compute in scaled units.
        scale = _scale(np.nanmax(np.abs(values), axis=0))
        mean = np.nanmean(values / scale, axis=0) * scale
        std = np.nanstd(values / scale, axis=0) * scale
        detector = cls(channels, window_size, mean, std, np.empty(0), tail)
        scores = np.concatenate([detector._score_series(s.values) for s in usable])
        detector.normal_scores = scores[np.isfinite(scores)]
        rows = sum(len(s) for s in usable)
        check_normal_scores(detector.normal_scores, f"a model trained on {rows} rows")
        return detector

    def score(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        windows = np.asarray(windows, dtype=np.float64)
        if windows.ndim != 3 or windows.shape[1:] != (self.window_size, len(self.channels)):
            raise ModelError(
                f"expected windows [B, {self.window_size}, {len(self.channels)}], "
                f"got {list(windows.shape)}"
            )
        # In scaled units a reading minus the mean cannot overflow, even near the
        # largest float; a z-score beyond the largest float is an infinite error.
        scale = _scale(np.maximum(np.abs(self.mean), self.std))
        with np.errstate(over="ignore"):
            z = (windows[:, -self.tail :, :] / scale - self.mean / scale) / (self.std / scale)
            channel_errors = np.square(z).mean(axis=1)
        return channel_errors.mean(axis=1), channel_errors

    def _score_series(self, values: np.ndarray) -> np.ndarray:
        windows = np.lib.stride_tricks.sliding_window_view(values, self.window_size, axis=0)
        windows = windows.transpose(0, 2, 1)  # [N, C, W] view → [N, W, C]
        parts = [self.score(windows[i : i + _CHUNK])[0] for i in range(0, len(windows), _CHUNK)]
        return np.concatenate(parts)

    def _hash(self) -> str:
        params = {
            "kind": "zscore",
            "channels": self.channels,
            "window_size": self.window_size,
            "tail": self.tail,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode("utf-8"))
        return "zscore-" + digest.hexdigest()[:16]


def _scale(magnitude: np.ndarray) -> np.ndarray:
    """A power of two per channel, at most ``magnitude`` and at least 1.

    Dividing by a power of two is exact, so scaled arithmetic gives the same
    z-scores as unscaled wherever the unscaled one does not overflow.
    """
    _, exponent = np.frexp(np.maximum(magnitude, 1.0))
    return np.ldexp(1.0, exponent - 1)
