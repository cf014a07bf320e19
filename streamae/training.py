"""Train an autoencoder detector on normal data.

Steps: check channels → cut each series into windows (never across two series)
→ split each series by time (earlier windows train, the last ``val_fraction``
validate) → fit the scaler on training rows only → train with Adam on MSE,
early-stopping on validation loss and keeping the best weights → remember the
codes of all the windows, training and validation (``streamae.detectors.memory``)
→ the model's ``normal_scores``: each remembered window scored with itself and
the windows overlapping it left out of the memory. So the threshold's calibration
covers all the normal data, not only its tail (20% of two days of a daily cycle
is not a whole day), and a pattern seen only once is calibrated as the novelty it
is. Without a memory, ``normal_scores`` are the validation windows' scores.

A small training set gets smaller batches (at least ``min_batches`` optimizer
steps per epoch): 15% of a 4,000-row file is ~600 windows, which at 256 a batch
gave 2 steps an epoch and an autoencoder that had barely started to learn.

>>> detector = train_detector(series, TrainConfig(window=32, epochs=10))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from streamae.config import MAX_SEED
from streamae.detectors.autoencoder import (
    ARCHITECTURES,
    CHUNK_WINDOWS,
    DEVICES,
    AutoencoderDetector,
    Scaler,
    resolve_device,
)
from streamae.detectors.base import check_channels_filled
from streamae.exceptions import ConfigError, ModelError
from streamae.tables import SensorSeries
from streamae.thresholds.base import MIN_SCORES, check_normal_scores

log = logging.getLogger(__name__)

#: Fewest windows a series needs to give both training and validation windows.
MIN_WINDOWS = 4
#: Most normal scores kept in the artifact (evenly spaced over the validation windows).
MAX_NORMAL_SCORES = 5000
#: Turns window start rows into a batch of scaled windows ``[B, W, C]``.
Gather = Callable[[np.ndarray], torch.Tensor]
#: Gradient norm clip: keeps an LSTM's early steps from blowing up.
CLIP_NORM = 1.0
#: Remembered windows scored at once against the whole memory (bounds the distance matrix).
HELD_OUT_CHUNK = 1024
#: Fewest held-out scores that calibrate a model with a memory (else: the validation scores).
MIN_HELD_OUT = MIN_SCORES


#: Default width per architecture (each module's ``DEFAULT_HIDDEN``).
DEFAULT_HIDDEN = MappingProxyType(
    {name: module.DEFAULT_HIDDEN for name, module in ARCHITECTURES.items()}
)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a training run; ``stride=None`` picks one giving <= ``max_windows``."""

    arch: str = "lstm"
    window: int = 64
    #: LSTM units or conv filters; None: the architecture's ``DEFAULT_HIDDEN``.
    hidden: int | None = None
    latent: int = 16
    layers: int = 1
    epochs: int = 30
    batch_size: int = 256
    min_batches: int = 16
    lr: float = 1e-3
    patience: int = 5
    val_fraction: float = 0.2
    noise_sigma: float = 0.0
    l1_latent: float = 0.0
    stride: int | None = None
    max_windows: int = 20000
    memory: int = 4096
    #: Score the last ``score_tail`` readings of each window (0: the whole window), so an
    #: alert follows the newest readings instead of lagging ``window - 1`` behind.
    score_tail: int = 0
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(
                f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}"
            )
        if self.hidden is None:
            object.__setattr__(self, "hidden", DEFAULT_HIDDEN[self.arch])
        if self.device not in DEVICES:
            raise ConfigError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        positive = (
            "window",
            "hidden",
            "latent",
            "layers",
            "epochs",
            "batch_size",
            "min_batches",
            "patience",
        )
        for name in (*positive, "max_windows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training {name} must be >= 1, got {getattr(self, name)}")
        if self.window < 2:
            raise ConfigError(f"training window must be >= 2 readings, got {self.window}")
        if self.stride is not None and self.stride < 1:
            raise ConfigError(f"training stride must be >= 1, got {self.stride}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not (self.noise_sigma >= 0 and self.l1_latent >= 0):
            raise ConfigError("noise_sigma and l1_latent must be >= 0")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"training seed must be 0..{MAX_SEED}, got {self.seed}")
        if self.memory < 0:
            raise ConfigError(f"training memory must be >= 0 (0: none), got {self.memory}")
        if not 0 <= self.score_tail <= self.window:
            raise ConfigError(
                f"score_tail must be in 0..{self.window} (0: the whole window), "
                f"got {self.score_tail}"
            )


#: TrainConfig fields the Settings set (as the named setting), never the training options.
FROM_SETTINGS = MappingProxyType({"window": "window_size", "device": "device"})

#: What a value of each TrainConfig field's type may be (as TOML gives it), and its name.
_KINDS: dict[type, tuple[tuple[type, ...], str]] = {
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    str: ((str,), "a string"),
}


def config_from_options(window: int, device: str, options: Mapping[str, Any]) -> TrainConfig:
    """The TrainConfig of named training ``options`` (e.g. a TOML table) with the settings'
    ``window`` and ``device``; a wrong name or type is a ConfigError naming the option.

    Built in one go, not replaced: defaults that depend on the architecture (the width)
    follow the architecture asked for.
    """
    fixed = sorted(FROM_SETTINGS.keys() & options.keys())
    if fixed:
        raise ConfigError(
            f"training option(s) {', '.join(fixed)}: set by the setting(s) "
            f"{', '.join(FROM_SETTINGS[name] for name in fixed)}, not by training options; "
            "set them there"
        )
    names = {f.name for f in dataclasses.fields(TrainConfig)} - FROM_SETTINGS.keys()
    wrong = sorted(options.keys() - names)
    if wrong:
        raise ConfigError(
            f"unknown training option(s) {', '.join(wrong)}; the training options are "
            f"{', '.join(sorted(names))}"
        )
    _check_types(options)
    return TrainConfig(window=window, device=device, **options)


def _check_types(options: Mapping[str, Any]) -> None:
    """Refuse a training option of the wrong type (``epochs = "5"``), naming it."""
    hints = typing.get_type_hints(TrainConfig)
    for name, value in options.items():
        # ``int | None`` takes an int: None cannot be written in TOML.
        kind = next(
            t for t in typing.get_args(hints[name]) or (hints[name],) if t is not type(None)
        )
        allowed, what = _KINDS.get(kind, ((kind,), kind.__name__))
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, allowed):
            quoted = "; remove the quotes" if isinstance(value, str) else ""
            raise ConfigError(f"training option {name!r} must be {what}, got {value!r}{quoted}")


@dataclass(frozen=True)
class _Windows:
    """Start rows of the training and validation windows in the concatenated data."""

    train: np.ndarray  # int64
    val: np.ndarray  # int64
    fit_rows: np.ndarray  # int64: the rows the training windows cover (for the scaler)
    stride: int
    rows: int  # rows of the sensors trained on (those with at least MIN_WINDOWS windows)


def train_detector(
    series: Sequence[SensorSeries], config: TrainConfig | None = None, progress: bool = True
) -> AutoencoderDetector:
    """Train a detector on ``series`` (normal data; all with the same channels)."""
    config = config or TrainConfig()
    channels = _common_channels(series)
    device = resolve_device(config.device)
    raw = np.concatenate([s.values for s in series]).astype(np.float64, copy=False)
    # Else a channel without values shows only as "too few windows without missing values".
    check_channels_filled(raw, channels, [s.source for s in series])
    windows = _plan_windows(series, raw, config)
    scaler = Scaler.fit(raw[windows.fit_rows])

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    noise = torch.Generator(device=device).manual_seed(config.seed)
    module = ARCHITECTURES[config.arch](
        channels=len(channels),
        window=config.window,
        hidden=config.hidden,
        latent=config.latent,
        layers=config.layers,
        tail=config.score_tail,
    ).to(device)
    data = torch.from_numpy(scaler.transform(raw)).to(device)
    offsets = torch.arange(config.window, device=device)

    def gather(starts: np.ndarray) -> torch.Tensor:
        return data[torch.from_numpy(starts).to(device)[:, None] + offsets]

    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr)
    batch_size = _batch_size(len(windows.train), config)
    best_loss, best_epoch, best_state = math.inf, 0, None
    train_loss = math.inf
    epoch = 0
    bar = tqdm(
        total=config.epochs, desc="train", unit="epoch", file=sys.stderr, disable=not progress
    )
    with bar:
        for epoch in range(1, config.epochs + 1):
            train_loss = _train_epoch(
                module, optimizer, gather, windows.train, rng, noise, config, batch_size
            )
            val_loss = _val_loss(module, gather, windows.val)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise ModelError(
                    f"training diverged at epoch {epoch} (loss is not finite); "
                    "lower the learning rate or check the data for extreme values"
                )
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            bar.set_postfix(train=f"{train_loss:.4g}", val=f"{val_loss:.4g}", best=best_epoch)
            bar.update()
            if epoch - best_epoch >= config.patience:
                log.debug("early stop at epoch %d; best was %d", epoch, best_epoch)
                break
    module.load_state_dict(best_state)
    remembered = np.empty(0, dtype=np.int64)
    if config.memory:
        everything = np.sort(np.concatenate([windows.train, windows.val]))
        remembered, codes = _codes(module, gather, everything, config.memory)
        module.set_memory(codes)

    info = {
        "training_data": _data_summary(series),
        "training": {
            "config": dataclasses.asdict(config),
            "stride": windows.stride,
            "batch_size": batch_size,
            "memory": len(remembered),
            "train_windows": len(windows.train),
            "val_windows": len(windows.val),
            "epochs_run": epoch,
            "best_epoch": best_epoch,
            "best_val_loss": best_loss,
            "final_train_loss": train_loss,
        },
    }
    detector = AutoencoderDetector(
        module, config.arch, channels, scaler, np.empty(0), info=info, device=str(device)
    )
    scores = _held_out_scores(module, gather, remembered, config.window, detector.score_tail)
    if len(scores) < MIN_HELD_OUT:  # no memory, or too little data to hold windows out
        scores, _ = detector.score(raw[windows.val[:, None] + np.arange(config.window)])
    check_normal_scores(scores, f"a model trained on {windows.rows} rows")
    pick = np.unique(np.linspace(0, len(scores) - 1, MAX_NORMAL_SCORES).round().astype(int))
    detector.normal_scores = scores[pick]
    return detector


def _common_channels(series: Sequence[SensorSeries]) -> tuple[str, ...]:
    if not series:
        raise ModelError("no training data: give at least one series with rows")
    channels = series[0].channels
    for other in series[1:]:
        if other.channels != channels:
            raise ModelError(
                f"all training series need the same channels in the same order: "
                f"{series[0].sensor_id!r} ({series[0].source}) has {list(channels)}, "
                f"{other.sensor_id!r} ({other.source}) has {list(other.channels)}; "
                "pick common ones with --columns"
            )
    return channels


def _plan_windows(series: Sequence[SensorSeries], raw: np.ndarray, config: TrainConfig) -> _Windows:
    """Split every series by time into training and validation windows."""
    width = config.window
    train, val, fit, skipped = [], [], [], []
    offset = used = 0
    for s in series:
        n_windows = len(s) - width + 1
        if n_windows < MIN_WINDOWS:
            skipped.append(s.sensor_id)
            offset += len(s)
            continue
        used += len(s)
        n_val = min(n_windows - 1, max(1, round(n_windows * config.val_fraction)))
        # A gap of width-1 windows keeps validation rows out of training when the series is
        # long enough; shared rows would hide overfitting from early stopping.
        gap = width - 1 if n_windows - n_val - (width - 1) >= n_val else 0
        n_train = n_windows - n_val - gap
        train.append(offset + np.arange(n_train))
        val.append(offset + np.arange(n_windows - n_val, n_windows))
        fit.append(offset + np.arange(n_train + width - 1))
        offset += len(s)
    if not train:
        longest = max(len(s) for s in series)
        raise ModelError(
            f"too few rows to train with window {width}: each sensor needs at least "
            f"{width + MIN_WINDOWS - 1} rows and the longest here has {longest}; "
            "use a smaller --window or more data"
        )
    if skipped:
        log.warning(
            "%d sensor(s) with fewer than %d rows skipped: %s",
            len(skipped),
            width + MIN_WINDOWS - 1,
            ", ".join(map(repr, skipped[:10])),
        )
    total = sum(len(t) for t in train)
    stride = config.stride or max(1, math.ceil(total / config.max_windows))
    bad_rows = np.concatenate([[0], np.cumsum(~np.isfinite(raw).all(axis=1))])

    def complete(starts: np.ndarray) -> np.ndarray:
        starts = starts[::stride]
        return starts[bad_rows[starts + width] == bad_rows[starts]]

    train_starts = np.concatenate([complete(t) for t in train])
    val_starts = np.concatenate([complete(v) for v in val])
    if not (len(train_starts) and len(val_starts)):
        raise ModelError(
            "too few windows without missing values (NaN) to train and validate; "
            "fill the gaps or give more data"
        )
    return _Windows(train_starts, val_starts, np.concatenate(fit), stride, used)


def _batch_size(windows: int, config: TrainConfig) -> int:
    """``config.batch_size``, or smaller so an epoch takes at least ``min_batches`` steps."""
    return max(1, min(config.batch_size, math.ceil(windows / config.min_batches)))


def _codes(
    module: nn.Module, gather: Gather, starts: np.ndarray, size: int
) -> tuple[np.ndarray, torch.Tensor]:
    """At most ``size`` training windows evenly spread over them: their starts and codes."""
    picked = starts[np.unique(np.linspace(0, len(starts) - 1, size).round().astype(np.int64))]
    module.eval()
    with torch.inference_mode():
        codes = [
            module.encode(gather(picked[i : i + CHUNK_WINDOWS]))
            for i in range(0, len(picked), CHUNK_WINDOWS)
        ]
    return picked, torch.cat(codes).clone()


def _held_out_scores(
    module: nn.Module, gather: Gather, starts: np.ndarray, width: int, tail: int
) -> np.ndarray:
    """Each remembered window's score when the memory lacks it and the windows overlapping it.

    A window rebuilt from its own code would score as if it were a copy of normal
    data; a test window never has its own copy in the memory. Scored like the
    detector scores: the error of the window's last ``tail`` readings.
    """
    memory = getattr(module, "memory", None)
    if memory is None or not len(starts):
        return np.empty(0)
    scores = []
    module.eval()
    with torch.inference_mode():
        for begin in range(0, len(starts), HELD_OUT_CHUNK):
            chunk = starts[begin : begin + HELD_OUT_CHUNK]
            distances = torch.cdist(
                memory[begin : begin + len(chunk)],
                memory,
                compute_mode="donot_use_mm_for_euclid_dist",
            )
            overlapping = np.abs(chunk[:, None] - starts[None, :]) < width
            distances[torch.from_numpy(overlapping).to(distances.device)] = math.inf
            nearest, has_other = (
                distances.argmin(dim=1),
                torch.isfinite(distances.min(dim=1).values),
            )
            rebuilt = module.decode(memory[nearest])
            errors = (rebuilt - gather(chunk))[:, -tail:].square().mean(dim=(1, 2))
            scores.append(errors[has_other].double().cpu().numpy())
    return np.concatenate(scores)


def _train_epoch(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    gather: Gather,
    starts: np.ndarray,
    rng: np.random.Generator,
    noise: torch.Generator,
    config: TrainConfig,
    batch_size: int,
) -> float:
    """One pass over the shuffled training windows; returns the mean reconstruction loss."""
    module.train()
    order = starts[rng.permutation(len(starts))]
    total = 0.0
    for begin in range(0, len(order), batch_size):
        target = gather(order[begin : begin + batch_size])
        inputs = target
        if config.noise_sigma > 0:
            # Denoising: noisy input, clean target.
            noisy = torch.randn(target.shape, generator=noise, device=target.device)
            inputs = target + config.noise_sigma * noisy
        latent = module.encode(inputs)
        loss = torch.nn.functional.mse_loss(module.decode(latent), target)
        total += loss.item() * len(target)
        if config.l1_latent > 0:
            loss = loss + config.l1_latent * latent.abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), CLIP_NORM)
        optimizer.step()
    return total / len(order)


def _val_loss(module: nn.Module, gather: Gather, starts: np.ndarray) -> float:
    module.eval()
    total = 0.0
    with torch.inference_mode():
        for begin in range(0, len(starts), CHUNK_WINDOWS):
            target = gather(starts[begin : begin + CHUNK_WINDOWS])
            total += torch.nn.functional.mse_loss(module(target), target).item() * len(target)
    return total / len(starts)


def _data_summary(series: Sequence[SensorSeries]) -> dict:
    digest = hashlib.sha256()
    for s in series:
        digest.update(np.ascontiguousarray(s.values, dtype="<f8").tobytes())
    return {
        "rows": int(sum(len(s) for s in series)),
        "sensors": len(series),
        "files": sorted({str(s.source) for s in series}),
        "sha256": digest.hexdigest(),
    }
