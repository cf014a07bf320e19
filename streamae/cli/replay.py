"""``streamae replay``: send recorded CSV/Parquet sensor data to the readings topic."""

from __future__ import annotations

import argparse
import itertools

from streamae.cli.options import (
    HelpFormatter,
    add_kafka_options,
    add_quiet_option,
    distinct_columns,
    positive_int,
    settings_from,
)
from streamae.cli.simulate import progress_bar
from streamae.replay import ReadingSender, load_recording

EPILOG = """\
columns:
  the first column is the timestamp (ISO-8601 or epoch ms); `anomaly` (or else `label`) is
  sent as each reading's label, not as a channel (with both, `label` is an ordinary column);
  `changepoint` is ignored; a `sensor_id` column
  names each row's sensor (otherwise the file name does); every other numeric column is a
  channel. The separator (, or ;) is detected.

examples:
  streamae replay ../shared/data/SKAB/data/valve1/ --speed 60
  streamae replay ../shared/data/NAB/data/realKnownCause/nyc_taxi.csv --sensor-id taxi
  streamae replay run.csv --columns temperature,pressure --limit 1000
"""


def speed(text: str) -> float | None:
    if text.strip().lower() in {"max", "0"}:
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'max'") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 (or 0 / max for no pacing), got {text}")
    return value


def column_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one column name")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="send recorded CSV/Parquet data to the readings topic",
        description=(
            "Send the rows of a CSV/Parquet file, or of every such file in a folder, to the "
            "readings topic as readings (key = sensor id). The files of a folder play side "
            "by side, each from its first row; the readings keep their recorded timestamps."
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("path", metavar="FILE_OR_DIR", help="a .csv/.parquet file or a folder")
    parser.add_argument(
        "--speed",
        type=speed,
        default=None,
        metavar="X",
        help="X times real time by the timestamps; 0 or max = as fast as possible (default max)",
    )
    parser.add_argument(
        "--sensor-id",
        metavar="ID",
        help="sensor id for files without a sensor_id column "
        "(default: the file name without its suffix)",
    )
    parser.add_argument(
        "--columns",
        type=column_list,
        action="append",
        metavar="COL[,COL...]",
        help="send only these channels, in this order (may repeat)",
    )
    parser.add_argument("--limit", type=positive_int, metavar="N", help="send at most N readings")
    add_kafka_options(parser)
    add_quiet_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    columns = list(itertools.chain.from_iterable(args.columns)) if args.columns else None
    distinct_columns(columns)
    recording = load_recording(args.path, columns=columns, sensor_id=args.sensor_id)
    total = len(recording) if args.limit is None else min(args.limit, len(recording))
    readings = itertools.islice(recording.readings(), total)
    with ReadingSender(settings) as sender, progress_bar(total, args.quiet) as bar:
        sent = sender.send(readings, speed=args.speed, progress=bar.update)
    pace = "as fast as possible" if args.speed is None else f"at {args.speed:g}x real time"
    skipped = (
        f", left out {recording.skipped_rows} rows with missing values"
        if recording.skipped_rows
        else ""
    )
    print(
        f"sent {sent} readings of {len(recording.sensors)} sensor(s) from {args.path} to topic "
        f"{settings.readings_topic!r} at {settings.bootstrap_servers} {pace}{skipped}"
    )
    return 0
