"""``streamae detect``: offline detection on a data file or folder, through the live pipeline."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streamae.cli.options import (
    HelpFormatter,
    add_profile_option,
    distinct_columns,
    fraction,
    positive_int,
    profile_from,
    settings_from,
    writable_file,
    writable_folder,
)
from streamae.detect import (
    DETECTORS,
    DetectOptions,
    detect_path,
    failed_summary,
    load_model,
    train_config,
)
from streamae.exceptions import ConfigError, InputError
from streamae.profile import choose_detector, training_named, warn_mismatches

ARCHITECTURES = ("lstm", "conv")  # kept here so --help does not import torch


EPILOG = """\
examples:
  streamae detect run.csv --out run-scored.csv --train-fraction 0.15   # NAB's protocol
  streamae detect runs/ --out scored/ --train-rows 400                # a folder, SKAB's
  streamae detect run.csv --out run-scored.csv --model models/pump
  streamae detect run.csv --out run-scored.csv --train-file normal.csv --detector zscore
  streamae detect run.csv --out run-scored.csv --train-fraction 0.15 --config benchmarks/nab.toml
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "detect",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
        help="detect anomalies in a data file or folder (offline, same pipeline as monitor)",
        description=(
            "Train on the first rows of each file (or on a normal file, or use a saved model), "
            "then stream the remaining rows through the same windows → model → threshold → "
            "alerts pipeline as `streamae monitor`, and write one output CSV per input file "
            "with one row per input row: timestamp, score, threshold, anomaly_score, "
            "is_anomaly, err_<channel>..., and label / sensor_id when the input has them."
        ),
    )
    parser.add_argument("input", metavar="INPUT", help="a CSV/Parquet file or a folder of them")
    parser.add_argument(
        "--out",
        required=True,
        metavar="OUTPUT",
        help="output file for a file (CSV, or Parquet if it ends in .parquet), or output folder "
        "(mirroring relative paths, as CSV) for a folder",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--train-fraction",
        type=fraction,
        metavar="F",
        help="train on the first F (0 < F < 1) of each sensor's rows, e.g. 0.15 for NAB",
    )
    source.add_argument(
        "--train-rows",
        type=positive_int,
        metavar="N",
        help="train on the first N rows of each sensor, e.g. 400 for SKAB",
    )
    source.add_argument(
        "--train-file",
        metavar="NORMAL",
        help="train once on this file of normal data and score every row of INPUT",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL_DIR",
        help="use this trained model instead of training (with --train-fraction/--train-rows "
        "those first rows are skipped, not scored)",
    )
    parser.add_argument(
        "--columns", nargs="+", metavar="COLUMN", help="value columns to use, in this order"
    )
    parser.add_argument(
        "--window",
        dest="window_size",
        type=positive_int,
        metavar="N",
        help="readings per window (default: STREAMAE_WINDOW_SIZE, else the profile's, else 64)",
    )
    parser.add_argument(
        "--stride",
        type=positive_int,
        metavar="N",
        help="score every N-th window (default: STREAMAE_STRIDE or 1)",
    )
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        help="what to train: the autoencoder or the fast z-score baseline (default: the "
        "profile's detector, else the autoencoder)",
    )
    parser.add_argument(
        "--arch",
        choices=ARCHITECTURES,
        help="autoencoder architecture; implies --detector autoencoder (default: the "
        "profile's, else lstm)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        metavar="N",
        help="max training epochs; implies --detector autoencoder",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=2, metavar="N", help="files in parallel (default 2)"
    )
    add_profile_option(
        parser, "uses its detector, [settings] and [training] (with --model: its [settings])"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar, progress messages or summary"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    profile = profile_from(args)
    settings = settings_from(args, profile)
    distinct_columns(args.columns)
    wanted = args.detector or ("autoencoder" if args.epochs else None)
    kind, arch = choose_detector(profile, wanted, args.arch)
    options = DetectOptions(
        train_fraction=args.train_fraction,
        train_rows=args.train_rows,
        train_file=Path(args.train_file) if args.train_file else None,
        model=Path(args.model) if args.model else None,
        columns=tuple(args.columns) if args.columns else None,
        detector=kind,
        arch=arch,
        epochs=args.epochs,
        training=() if args.model else tuple(sorted(profile.training.items())),
    )
    model = None
    if options.model is not None:
        for_training = [
            name
            for name, given in (
                ("--window", args.window_size),
                ("--arch", args.arch),
                ("--epochs", args.epochs),
                ("--detector", args.detector),
            )
            if given
        ]
        if for_training:
            raise ConfigError(
                f"{', '.join(for_training)} set how to train; with --model the model fixes "
                "them: drop them"
            )
        model = load_model(options.model, settings)  # a bad model fails before any work
        if profile.file is not None:
            warn_mismatches(profile, model, str(options.model))
    elif options.detector == "autoencoder":
        with training_named(profile):  # a bad [training] value fails before any work
            train_config(settings, options)
    _check_writable(args.input, args.out)
    reports = detect_path(
        args.input,
        args.out,
        settings,
        options,
        jobs=args.jobs,
        progress=not args.quiet,
        model=model,
    )
    for report in reports:
        if report.error:
            print(f"FAILED {report.source}: {report.error}", file=sys.stderr)
        elif not args.quiet:
            print(
                f"{report.source} → {report.output}: {report.rows:,} rows, "
                f"{report.scored:,} scored, {report.alerts} alert(s), {report.seconds:.1f} s"
            )
    failure = failed_summary(reports)
    if failure:
        raise InputError(failure)
    return 0


def _check_writable(source: str, out: str) -> None:
    """Where ``detect_path`` will write, checked before the work: a place that cannot be
    written fails now, not after the training and scoring."""
    path = Path(out)
    if Path(source).is_dir() or path.is_dir() or out.endswith(("/", os.sep)):
        writable_folder(path, "--out")
    elif not path.exists():  # an earlier output there is checked by ``output_paths``
        writable_file(path, "--out")
