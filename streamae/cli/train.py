"""``streamae train``: train an autoencoder on normal data and save the model folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from streamae import artifact
from streamae.cli.options import (
    HelpFormatter,
    add_profile_option,
    distinct_columns,
    non_negative_float,
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
    profile_from,
    random_seed,
    settings_from,
    writable_folder,
)
from streamae.config import Settings
from streamae.detectors.autoencoder import ARCHITECTURES, DEVICES, AutoencoderDetector
from streamae.exceptions import ConfigError
from streamae.profile import Profile, choose_detector, training_named
from streamae.tables import (
    SensorSeries,
    read_series,
    repeated_timestamps,
    table_files,
    warn_repeated_timestamps,
)
from streamae.training import DEFAULT_HIDDEN, TrainConfig, config_from_options, train_detector

log = logging.getLogger(__name__)
DEFAULTS = TrainConfig()


EPILOG = """\
examples:
  streamae train --input normal.csv --out models/pump
  streamae train --input normal/ --out models/plant --arch conv --window 32 --epochs 30
  streamae train --input valve1/0.csv --max-rows 400 --out models/valve   # SKAB: first 400 rows
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
        help="train an autoencoder on normal data and save the model",
        description=(
            "Train an autoencoder on normal sensor data (CSV or Parquet files) and save it "
            "as a model folder (model.safetensors + model.json) for detect and monitor. "
            "The last part of each sensor's rows is held back to validate and to calibrate "
            "the normal score range."
        ),
    )
    parser.add_argument(
        "--input", required=True, metavar="FILE_OR_DIR", help="a data file or a folder of them"
    )
    parser.add_argument(
        "--columns", nargs="+", metavar="COLUMN", help="value columns to use, in this order"
    )
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument(
        "--arch",
        choices=sorted(ARCHITECTURES),
        help=f"model architecture (default: the profile's detector, else {DEFAULTS.arch})",
    )
    parser.add_argument(
        "--window",
        dest="window_size",
        type=positive_int,
        metavar="N",
        help="readings per window (default: STREAMAE_WINDOW_SIZE, else the profile's, else 64)",
    )
    parser.add_argument(
        "--score-tail",
        type=non_negative_int,
        metavar="N",
        help="score the newest N readings of each window, the whole window being the "
        "model's context, so alerts follow the present (0: the whole window; default: the "
        f"profile's, else {DEFAULTS.score_tail}; benchmarks/nab.toml: 8, a quarter of its window)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        help=f"most epochs to train (default: {DEFAULTS.epochs})",
    )
    parser.add_argument(
        "--latent",
        type=positive_int,
        metavar="N",
        help=f"bottleneck size (default: {DEFAULTS.latent})",
    )
    parser.add_argument(
        "--hidden",
        type=positive_int,
        default=None,
        metavar="N",
        help="LSTM units or conv filters (default: the profile's, else "
        + ", ".join(f"{n} for {arch}" for arch, n in DEFAULT_HIDDEN.items())
        + "; benchmarks/nab.toml: 128)",
    )
    parser.add_argument(
        "--layers",
        type=positive_int,
        metavar="N",
        help=f"LSTM layers or stride-2 conv stages (default: {DEFAULTS.layers})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        metavar="N",
        help=f"windows per training step (default: {DEFAULTS.batch_size})",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        help=f"Adam learning rate (default: {DEFAULTS.lr})",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        metavar="N",
        help=f"stop after N epochs without a better validation loss (default: {DEFAULTS.patience})",
    )
    parser.add_argument(
        "--val-fraction",
        type=open_fraction,
        metavar="F",
        help="share of each sensor's windows held back for validation "
        f"(default: {DEFAULTS.val_fraction})",
    )
    parser.add_argument(
        "--noise",
        dest="noise_sigma",
        type=non_negative_float,
        metavar="SIGMA",
        help="denoising: Gaussian noise (scaled units) added to inputs while training "
        f"(default: {DEFAULTS.noise_sigma})",
    )
    parser.add_argument(
        "--l1",
        dest="l1_latent",
        type=non_negative_float,
        metavar="LAMBDA",
        help=f"sparse latent penalty weight (default: {DEFAULTS.l1_latent})",
    )
    parser.add_argument(
        "--seed",
        type=random_seed,
        metavar="K",
        help=f"random seed; the same seed gives the same model on CPU (default: {DEFAULTS.seed})",
    )
    parser.add_argument(
        "--device", choices=DEVICES, help="auto, cpu or cuda (default: STREAMAE_DEVICE or auto)"
    )
    parser.add_argument(
        "--max-rows",
        type=positive_int,
        metavar="N",
        help="use only the first N rows of each sensor (e.g. SKAB: 400)",
    )
    add_profile_option(
        parser, "uses its detector, [training] (over the defaults here) and window_size/device"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress messages")
    parser.set_defaults(run=run)


#: Options that set TrainConfig fields (each option's dest is the field's name).
TRAINING_OPTIONS = (
    "hidden",
    "latent",
    "layers",
    "epochs",
    "batch_size",
    "lr",
    "patience",
    "val_fraction",
    "noise_sigma",
    "l1_latent",
    "seed",
    "score_tail",
)


def run(args: argparse.Namespace) -> int:
    profile = profile_from(args)
    settings = settings_from(args, profile)
    distinct_columns(args.columns)
    if args.score_tail is not None and args.score_tail > settings.window_size:
        raise ConfigError(  # the window may come from the environment or the profile
            f"--score-tail {args.score_tail}: must be at most the window, "
            f"{settings.window_size} readings (0: the whole window)"
        )
    config = config_from_args(args, settings, profile)
    artifact.check_target(Path(args.out))  # before the training, not after it
    writable_folder(Path(args.out), "--out")
    files = table_files(args.input)
    series = read_all(files, args.columns, args.max_rows)
    detector = train_detector(series, config, progress=not args.quiet)
    folder = artifact.save(detector, Path(args.out))
    print(summary(detector, folder))
    return 0


def config_from_args(args: argparse.Namespace, settings: Settings, profile: Profile) -> TrainConfig:
    """TrainConfig defaults < the profile's detector and [training] < the options given."""
    kind, arch = choose_detector(profile, arch=args.arch)
    if kind != "autoencoder":
        raise ConfigError(
            f"{profile.file}: detector {profile.detector!r} is not an autoencoder, so "
            "there is nothing to train; give --arch, or use "
            f"`streamae detect --config {profile.file}`, which fits it per file"
        )
    changes = dict(profile.training) | ({"arch": arch} if arch else {})
    changes |= {
        name: getattr(args, name) for name in TRAINING_OPTIONS if getattr(args, name) is not None
    }
    with training_named(profile):
        return config_from_options(settings.window_size, settings.device, changes)


def read_all(
    files: list[Path], columns: list[str] | None, max_rows: int | None
) -> list[SensorSeries]:
    """Every sensor's series in ``files``, cut to its first ``max_rows`` rows when given."""
    series = []
    for path in files:
        ones = [
            one if max_rows is None else one.slice(0, max_rows)
            for one in read_series(path, columns)
        ]
        # Training reads rows in order, whatever their timestamps; the monitor drops repeats.
        warn_repeated_timestamps(
            path,
            sum(map(repeated_timestamps, ones)),
            "training takes each as the next reading, but detect and the monitor score only "
            "the first row with each timestamp (check the timestamp column)",
        )
        series += ones
    return series


def summary(detector: AutoencoderDetector, folder: Path) -> str:
    """One paragraph for the user: what was trained, on what, how well, where it went."""
    data = detector.info["training_data"]
    run_info = detector.info["training"]
    p50, p99 = np.percentile(detector.normal_scores, [50, 99])
    return (
        f"Trained {detector.arch} model {detector.version} on {data['rows']:,} rows from "
        f"{data['sensors']} sensor(s) in {len(data['files'])} file(s), channels "
        f"{', '.join(detector.channels)}, window {detector.window_size}: "
        f"{run_info['train_windows']:,} training and {run_info['val_windows']:,} validation "
        f"windows, {run_info['epochs_run']} epoch(s), best validation loss "
        f"{run_info['best_val_loss']:.4g} (epoch {run_info['best_epoch']}). Normal scores: "
        f"p50 {p50:.4g}, p99 {p99:.4g}. Saved to {folder}."
    )
