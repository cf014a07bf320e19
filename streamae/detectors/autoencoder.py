"""The autoencoder detector: scale a window, rebuild it, score the reconstruction error.

``score = mean over channels of (mean over the window's last readings of squared
error)``, in scaled units, so every channel counts alike whatever its physical
range. "Last readings" is the whole window unless the model was trained with a
``score_tail`` (``hyperparameters["tail"]``): then the error of the newest
``tail`` readings, with the whole window as the model's context.
Detectors come from ``streamae.training.train_detector`` or ``streamae.artifact.load``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import numpy as np
import safetensors
import torch
from torch import nn

import streamae
from streamae.detectors.base import Detector, finite_training_values
from streamae.detectors.conv import ConvAutoencoder
from streamae.detectors.lstm import LSTMAutoencoder
from streamae.detectors.memory import SensorMemory, nearest
from streamae.exceptions import ModelError

#: Architecture name (as stored in the artifact) → module class.
ARCHITECTURES: dict[str, type[nn.Module]] = {"lstm": LSTMAutoencoder, "conv": ConvAutoencoder}
DEVICES = ("auto", "cpu", "cuda")
#: Windows per forward pass: bounds memory whatever the batch a caller hands in.
CHUNK_WINDOWS = 4096
#: On CPU, passes of about this many windows run fastest: an LSTM's per-step
#: activations then stay in cache (measured on 2 cores: 1.4-1.6x the windows/s
#: of 4096-window passes for the LSTM, ~2x for the conv model; 128 and 512 are slower).
CPU_CHUNK_WINDOWS = 256
#: Fewest codes searched at once in a sensor memory (see ``AutoencoderDetector._recall``).
MIN_SEARCH_ROWS = 8
#: ``mean |x - median| * MEAN_AD_TO_SIGMA`` estimates the standard deviation of
#: normal data (sqrt(pi / 2)).
MEAN_AD_TO_SIGMA = 1.2533
#: The scale ignores rows below this percentile of their channel, or above 100 minus it.
TRIM_PERCENT = 1.0

_threads_configured = False


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; asking for missing CUDA is an error."""
    _configure_threads()
    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was requested but CUDA is not available; use cpu or auto")
    return torch.device(device)


def _configure_threads() -> None:
    # Torch may default to fewer threads than the cores this process may use
    # (containers); set it once, here, for training and scoring alike. A count chosen
    # for OpenMP (the user's, or STREAMAE_TORCH_THREADS through ``pin_openmp``) stays:
    # raised after torch loaded, OpenMP keeps an extra worker each pass waits on.
    global _threads_configured
    if not _threads_configured and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(max(1, cores or 1))
    _threads_configured = True


def library_versions() -> dict[str, str]:
    """The versions that matter for reproducing a model."""
    return {
        "python": platform.python_version(),
        "streamae": streamae.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, eq=False)
class Scaler:
    """Per-channel ``(x - center) / scale``, fitted robustly on training rows.

    ``center`` is the median; ``scale`` is the mean absolute deviation from it
    of the rows between the channel's 1st and 99th percentiles, times
    sqrt(pi / 2) (the standard deviation for Gaussian data): the rarest 2% of
    rows, where wild outliers sit, do not count. Not the IQR: on a quantised
    channel where most readings repeat one value (SKAB's flow rate is 32 in
    most rows, 31 or 33 in the others) the IQR measures the interpolation
    between ties — 0.001 where the steps are 1 — so one ordinary step scored
    as ~1,000 standard deviations and that channel alone decided the score.
    The standard deviation when that is zero (all but the rarest rows repeat
    one value), and 1.0 for a constant channel so it never divides by zero
    (any change is then measured in raw units).
    """

    center: np.ndarray  # float64 [C]
    scale: np.ndarray  # float64 [C]
    method: str = "robust"

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        """Fit on ``values`` ``[N, C]``; non-finite entries are ignored."""
        values = finite_training_values(values)
        center = np.nanmedian(values, axis=0)
        low, high = np.nanpercentile(values, [TRIM_PERCENT, 100.0 - TRIM_PERCENT], axis=0)
        inside = np.where((values >= low) & (values <= high), values, np.nan)
        scale = np.nanmean(np.abs(inside - center), axis=0) * MEAN_AD_TO_SIGMA
        tiny = 1e-9 * np.maximum(1.0, np.abs(center))
        scale = np.where(scale > tiny, scale, np.nanstd(values, axis=0))
        scale = np.where(scale > tiny, scale, 1.0)
        return cls(center.astype(np.float64), scale.astype(np.float64))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """``values`` ``[..., C]`` scaled, as float32 (the model's input)."""
        out = np.empty(np.shape(values), dtype=np.float32)
        # Subtract in the input's precision (large offsets), then store float32: no float64 temp.
        np.subtract(values, self.center, out=out)
        return np.divide(out, self.scale.astype(np.float32), out=out)


class AutoencoderDetector(Detector):
    """A trained autoencoder plus everything needed to score raw windows with it.

    ``info`` carries JSON-able facts for the artifact (training data summary,
    training config and results, library versions, creation time). ``version``
    is passed only by the artifact loader, which has verified it; otherwise it
    is computed from the content on first use.
    """

    def __init__(
        self,
        module: nn.Module,
        arch: str,
        channels: Sequence[str],
        scaler: Scaler,
        normal_scores: np.ndarray,
        info: dict[str, Any] | None = None,
        device: str = "auto",
        version: str | None = None,
    ) -> None:
        if arch not in ARCHITECTURES:
            raise ModelError(f"unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")
        self.arch = arch
        self.hyperparameters: dict[str, int] = dict(module.hparams)
        self.window_size = int(self.hyperparameters["window"])
        self.channels = tuple(channels)
        if len(self.channels) != self.hyperparameters["channels"]:
            raise ModelError(
                f"the model has {self.hyperparameters['channels']} input channels "
                f"but {len(self.channels)} channel names were given"
            )
        self.scaler = scaler
        self.normal_scores = np.asarray(normal_scores, dtype=np.float64)
        self.info = {"created_at": utc_now(), "libraries": library_versions(), **(info or {})}
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self._version = version

    @property
    def score_tail(self) -> int:
        """The last readings of a window its score averages (``W`` unless trained otherwise)."""
        return self.hyperparameters.get("tail") or self.window_size

    @property
    def version(self) -> str:
        """First 12 hex digits of the artifact content hash (same before and after saving)."""
        if self._version is None:
            # Imported here because streamae.artifact imports this module.
            from streamae.artifact import content_hash

            self._version = content_hash(self)[:12]
        return self._version

    def score(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score raw windows ``[B, W, C]`` (float32 or float64; views are fine).

        Returns float64 ``(scores [B], channel_errors [B, C])``.
        """
        scores, errors, _ = self._score(windows, None)
        return scores, errors

    @property
    def can_remember(self) -> bool:
        """A model with a memory of normal codes can also rebuild from a sensor's."""
        return self.module.memory is not None

    def sensor_memory(self, size: int, block: int, delay: int = 0) -> SensorMemory:
        """A ``SensorMemory`` beside the training windows' memory."""
        self._check_can_remember()
        return SensorMemory(size, block, self.hyperparameters["latent"], delay, self.device)

    def score_remembering(
        self, windows: np.ndarray, memories: Sequence[torch.Tensor | None]
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """``score``, each window rebuilt from the code nearest to its own in the model's
        memory or in ``memories[i]`` (its sensor's ``SensorMemory.items()``); also returns
        the windows' codes ``[B, latent]``."""
        if len(memories) != len(windows):
            raise ModelError(f"{len(memories)} sensor memories for {len(windows)} windows")
        self._check_can_remember()
        return self._score(windows, memories)

    def _check_can_remember(self) -> None:
        if not self.can_remember:
            raise ModelError(f"model {self.version} has no memory of normal codes to add to")

    def _score(
        self, windows: np.ndarray, memories: Sequence[torch.Tensor | None] | None
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor | None]:
        windows = np.asarray(windows)
        if not np.issubdtype(windows.dtype, np.floating):
            windows = windows.astype(np.float64)
        expected = (self.window_size, len(self.channels))
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise ModelError(
                f"windows have shape {windows.shape}; this model scores [B, {expected[0]}, "
                f"{expected[1]}] (window {expected[0]}, channels {list(self.channels)})"
            )
        errors = np.empty((len(windows), expected[1]), dtype=np.float64)
        codes = []
        limit = (
            CHUNK_WINDOWS if self.device.type != "cpu" else min(CHUNK_WINDOWS, CPU_CHUNK_WINDOWS)
        )
        # Equal-sized chunks: never a tiny last one (a batch of one or two windows
        # takes another kernel path, whose results differ in the last bits).
        count = -(-len(windows) // limit)
        bounds = [i * len(windows) // count for i in range(count + 1)] if count else [0]
        tail = self.score_tail
        with torch.inference_mode():
            for start, stop in pairwise(bounds):
                x = torch.from_numpy(self.scaler.transform(windows[start:stop])).to(self.device)
                if memories is None:
                    rebuilt = self.module(x)
                else:
                    code = self.module.encode(x)
                    codes.append(code)
                    rebuilt = self.module.decode(self._recall(code, memories[start:stop]))
                squared = (rebuilt - x).square_()[:, -tail:]
                errors[start:stop] = squared.mean(dim=1).cpu().numpy()
        return errors.mean(axis=1), errors, (torch.cat(codes) if memories is not None else None)

    def _recall(self, codes: torch.Tensor, memories: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Each code's nearest item in the model's memory or in its sensor's memory
        (windows of one sensor share one ``memories`` object: one search each)."""
        items, values = nearest(codes, self.module.memory)
        groups: dict[int, list[int]] = {}
        for position, memory in enumerate(memories):
            if memory is not None:
                groups.setdefault(id(memory), []).append(position)
        for positions in groups.values():
            where = torch.tensor(positions, device=codes.device)
            # Searched with at least MIN_SEARCH_ROWS rows: a single row takes another
            # kernel path whose last bits differ, which can flip a near-tie.
            rows = codes[where]
            if len(rows) < MIN_SEARCH_ROWS:
                rows = torch.cat([rows, rows[-1:].expand(MIN_SEARCH_ROWS - len(rows), -1)])
            own, own_values = nearest(rows, memories[positions[0]])
            own, own_values = own[: len(positions)], own_values[: len(positions)]
            closer = own_values < values[where]
            items[where[closer]] = own[closer]
        return items
