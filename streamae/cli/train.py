"""``streamae train``: train an autoencoder on normal data and save the model folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from streamae import artifact
from streamae.cli.options import (
    HelpFormatter,
    distinct_columns,
    non_negative_float,
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
    random_seed,
    settings_from,
    writable_folder,
)
from streamae.detectors.autoencoder import ARCHITECTURES, DEVICES, AutoencoderDetector
from streamae.exceptions import ConfigError
from streamae.tables import SensorSeries, read_series, table_files
from streamae.training import DEFAULT_HIDDEN, TrainConfig, train_detector

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
        default=DEFAULTS.arch,
        help="model architecture (default: %(default)s)",
    )
    parser.add_argument(
        "--window",
        dest="window_size",
        type=positive_int,
        metavar="N",
        help="readings per window (default: STREAMAE_WINDOW_SIZE or 64)",
    )
    parser.add_argument(
        "--score-tail",
        type=non_negative_int,
        default=DEFAULTS.score_tail,
        metavar="N",
        help="score the newest N readings of each window, the whole window being the "
        "model's context, so alerts follow the present (0: the whole window; default: "
        "%(default)s; the benchmark profile uses a quarter of the window)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULTS.epochs,
        metavar="N",
        help="most epochs to train (default: %(default)s)",
    )
    parser.add_argument(
        "--latent",
        type=positive_int,
        default=DEFAULTS.latent,
        metavar="N",
        help="bottleneck size (default: %(default)s)",
    )
    parser.add_argument(
        "--hidden",
        type=positive_int,
        default=None,
        metavar="N",
        help="LSTM units or conv filters (default: "
        + ", ".join(f"{n} for {arch}" for arch, n in DEFAULT_HIDDEN.items())
        + ")",
    )
    parser.add_argument(
        "--layers",
        type=positive_int,
        default=DEFAULTS.layers,
        metavar="N",
        help="LSTM layers or stride-2 conv stages (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULTS.batch_size,
        metavar="N",
        help="windows per training step (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=DEFAULTS.lr,
        help="Adam learning rate (default: %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=DEFAULTS.patience,
        metavar="N",
        help="stop after N epochs without a better validation loss (default: %(default)s)",
    )
    parser.add_argument(
        "--val-fraction",
        type=open_fraction,
        default=DEFAULTS.val_fraction,
        metavar="F",
        help="share of each sensor's windows held back for validation (default: %(default)s)",
    )
    parser.add_argument(
        "--noise",
        type=non_negative_float,
        default=DEFAULTS.noise_sigma,
        metavar="SIGMA",
        help="denoising: Gaussian noise (scaled units) added to inputs while training",
    )
    parser.add_argument(
        "--l1",
        type=non_negative_float,
        default=DEFAULTS.l1_latent,
        metavar="LAMBDA",
        help="sparse latent penalty weight",
    )
    parser.add_argument(
        "--seed",
        type=random_seed,
        default=DEFAULTS.seed,
        metavar="K",
        help="random seed; the same seed gives the same model on CPU (default: %(default)s)",
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress messages")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    distinct_columns(args.columns)
    if args.score_tail > settings.window_size:  # the window may come from the environment
        raise ConfigError(
            f"--score-tail {args.score_tail}: must be at most the window, "
            f"{settings.window_size} readings (0: the whole window)"
        )
    config = TrainConfig(
        arch=args.arch,
        window=settings.window_size,
        hidden=args.hidden,
        latent=args.latent,
        layers=args.layers,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        val_fraction=args.val_fraction,
        noise_sigma=args.noise,
        l1_latent=args.l1,
        seed=args.seed,
        score_tail=args.score_tail,
        device=settings.device,
    )
    artifact.check_target(Path(args.out))  # before the training, not after it
    writable_folder(Path(args.out), "--out")
    files = table_files(args.input)
    series = read_all(files, args.columns, args.max_rows)
    detector = train_detector(series, config, progress=not args.quiet)
    folder = artifact.save(detector, Path(args.out))
    print(summary(detector, folder))
    return 0


def read_all(
    files: list[Path], columns: list[str] | None, max_rows: int | None
) -> list[SensorSeries]:
    """Every sensor's series in ``files``, cut to its first ``max_rows`` rows when given."""
    series = []
    for path in files:
        for one in read_series(path, columns):
            series.append(one if max_rows is None else one.slice(0, max_rows))
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
