"""``streamae evaluate``: score `streamae detect` outputs against labelled data."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamae.cli.options import HelpFormatter, report_path, write_report
from streamae.evaluation import evaluate_folder

EPILOG = """\
figures:
  point P/R/F1  row by row over the scored rows (TP/FP/FN summed over files)
  event P/R/F1  Orion's overlap counts: a labelled window is found when a run of
                is_anomaly=1 rows overlaps it; a run overlapping no window is a FP;
                precision = found windows / (found windows + FP runs)
  NAB           NAB score (standard, reward_low_FP_rate, reward_low_FN_rate) of the
                alert onsets, normalised so never alerting = 0 and perfect = 100

examples:
  streamae evaluate --detections det-out --data ../shared/data/NAB/data \\
      --labels ../shared/data/NAB/labels/combined_windows.json --json nab.json
  streamae evaluate --detections det-skab --data ../shared/data/SKAB/data --labels column:anomaly
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score detections against labels (point, event and NAB metrics)",
        description=(
            "Match each `streamae detect` output under --detections with the data file at the "
            "same relative path under --data and score its is_anomaly column against the "
            "labels, per file, per category (first folder) and in total."
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--detections", required=True, type=Path, metavar="DIR", help="folder of detect outputs"
    )
    parser.add_argument(
        "--data", required=True, type=Path, metavar="DIR", help="folder of the input data files"
    )
    parser.add_argument(
        "--labels",
        required=True,
        metavar="LABELS",
        help="NAB-style windows JSON, or column:NAME for 0/1 labels in the data files",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write every figure as JSON")
    parser.add_argument(
        "--per-file", action="store_true", help="print one row per file as well as per category"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report_path(args.json, "--json")
    report = evaluate_folder(args.detections, args.data, args.labels, progress=True)
    print(f"labels: {report.labels}")
    if args.per_file:
        print(report.table(per_file=True))
        print()
    print(report.table())
    if args.json is not None:
        write_report(args.json, report.to_json(), "--json")
        print(f"wrote {args.json}")
    return 0
