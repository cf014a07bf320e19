"""``streamae benchmark nab|skab``: detect over a labelled corpus with its protocol, then evaluate."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamae.benchmark import PROTOCOLS, run_benchmark
from streamae.cli.options import (
    HelpFormatter,
    positive_int,
    report_path,
    writable_folder,
    write_report,
)
from streamae.detect import failed_summary
from streamae.exceptions import InputError
from streamae.profile import DETECTORS

EPILOG = """\
protocols:
  nab   train on the first 15% of each file; labels DIR/labels/combined_windows.json;
        event and point P/R/F1, NAB standard / low-FP / low-FN scores of the alert onsets
  skab  train on the first 400 rows of each file; labels in the `anomaly` column
        (files without it are skipped); point-wise F1 first, event metrics too

settings: Settings defaults < benchmarks/<name>.toml < STREAMAE_* environment < options

examples:
  streamae benchmark nab --out nab-report.json
  streamae benchmark skab --data ../shared/data/SKAB --detector lstm --jobs 2
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="run a labelled benchmark (NAB or SKAB) end to end and print its scores",
        description=(
            "Run `streamae detect` over every labelled file of a benchmark corpus with the "
            "corpus's training protocol, evaluate the detections against the labels, print "
            "a per-category table with totals, and optionally write a JSON report with the "
            "settings and model configuration used, per-file and total metrics and wall time."
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "corpus",  # its name in "the following arguments are required"
        choices=sorted(PROTOCOLS),
        help=f"the benchmark corpus to run: {' or '.join(sorted(PROTOCOLS))}",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="the corpus folder (with data/ inside) or its data folder "
        "(default: ../shared/data/NAB or ../shared/data/SKAB beside the repository)",
    )
    parser.add_argument(
        "--labels",
        metavar="LABELS",
        help="windows JSON or column:NAME (default: the protocol's labels)",
    )
    parser.add_argument("--out", type=Path, metavar="REPORT.json", help="write the JSON report")
    parser.add_argument(
        "--detector",
        choices=sorted(DETECTORS),
        help="conv or lstm autoencoder, or the z-score baseline (default: the "
        "profile's, else conv)",
    )
    parser.add_argument(
        "--jobs", type=positive_int, default=2, metavar="N", help="files in parallel (default 2)"
    )
    parser.add_argument(
        "--window",
        dest="window_size",
        type=positive_int,
        metavar="N",
        help="readings per window (default: STREAMAE_WINDOW_SIZE, else the profile's, else 64)",
    )
    parser.add_argument(
        "--config",
        metavar="TOML",
        help="detection profile to use instead of benchmarks/<name>.toml",
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="keep the detection outputs in DIR (default: discarded)"
    )
    parser.add_argument(
        "--per-file", action="store_true", help="print one row per file as well as per category"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or progress messages")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report_path(args.out, "--out")
    if args.keep is not None:
        writable_folder(Path(args.keep), "--keep")
    report = run_benchmark(
        args.corpus,
        data=args.data,
        labels=args.labels,
        detector=args.detector,
        jobs=args.jobs,
        profile_file=args.config,
        settings={"window_size": args.window_size},
        workdir=args.keep,
        progress=not args.quiet,
    )
    model = report.model
    what = f"{report.detector} (window {report.settings['window_size']}"
    if model.get("kind") == "autoencoder":
        what += f", hidden {model['hidden']}, latent {model['latent']}, epochs {model['epochs']}"
    print(
        f"benchmark {report.protocol.name}: {len(report.files)} file(s) from {report.data}; "
        f"{report.protocol.describe()}; labels: {report.labels}"
    )
    print(f"detector {what}); jobs {report.jobs}")
    if report.skipped:
        print(f"skipped (no labels): {', '.join(report.skipped)}")
    if args.per_file:
        print(report.evaluation.table(per_file=True))
        print()
    print(report.evaluation.table())
    print(f"total: {report.headline()}")
    seconds = report.seconds
    load = report.machine.get("load_average_before")
    print(
        f"wall time {seconds['wall']:.1f} s (detect {seconds['detect']:.1f} s, evaluate "
        f"{seconds['evaluate']:.1f} s) on {report.machine.get('cpus')} CPU(s)"
        + (f", load average {load[0]:.1f} at the start" if load else "")
    )
    if args.out is not None:
        write_report(args.out, report.to_json(), "--out")
        print(f"wrote {args.out}")
    failure = failed_summary(report.files)
    if failure:
        for one in report.failed:
            print(f"FAILED {one.source}: {one.error}")
        raise InputError(failure)
    return 0
