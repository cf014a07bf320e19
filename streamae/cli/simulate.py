"""``streamae simulate``: labelled multi-sensor readings, live to Kafka or into a file."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from tqdm import tqdm

from streamae.cli.options import (
    HelpFormatter,
    add_kafka_options,
    add_quiet_option,
    fraction,
    positive_float,
    positive_int,
    random_seed,
    settings_from,
)
from streamae.exceptions import InvalidReading
from streamae.messages import format_ts, parse_ts
from streamae.replay import ReadingSender
from streamae.simulate import (
    ANOMALY_KINDS,
    DEFAULT_START_MS,
    Simulator,
    length_for,
    readings_per_event,
)
from streamae.simulate.output import check_out, write_run

log = logging.getLogger(__name__)

# Normal readings between two anomaly events, in windows: each event is its own alert.
GAP_WINDOWS = 3

EPILOG = f"""\
anomaly kinds (each an event of 10-400 readings, every reading in it labelled 1):
  {", ".join(ANOMALY_KINDS)}

examples:
  streamae simulate --sensors 20 --rate 1000 --duration 60                 # live, to Kafka
  streamae simulate --sensors 20 --rate 1000 --duration 60 --anomaly-rate 0 --out normal.csv
  streamae simulate --sensors 5 --duration 600 --out runs/ --seed 7        # one CSV per sensor
"""


def timestamp(text: str) -> int:
    try:
        return parse_ts(int(text) if text.isdigit() else text)
    except InvalidReading as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def kinds(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in ANOMALY_KINDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown kind(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ANOMALY_KINDS)}"
        )
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="simulate sensors with labelled anomalies, to Kafka or to a file",
        description=(
            "Simulate --sensors sensors emitting --rate readings/s in total for --duration "
            "seconds: correlated channels with daily and fast cycles, drift and noise, plus "
            "labelled anomaly events. Without --out the readings go to the readings topic in "
            "real time; with --out they go to a CSV/Parquet file or a folder. The same "
            "options (and --seed) give the same readings."
        ),
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--sensors", type=positive_int, default=10, metavar="N", help="default 10")
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=100.0,
        metavar="R",
        help="readings per second, all sensors together (default 100)",
    )
    parser.add_argument(
        "--duration", type=positive_float, default=60.0, metavar="S", help="seconds (default 60)"
    )
    parser.add_argument(
        "--channels",
        type=positive_int,
        default=3,
        metavar="C",
        help="channels per sensor (default 3)",
    )
    parser.add_argument(
        "--anomaly-rate",
        type=fraction,
        default=0.02,
        metavar="P",
        help="expected fraction of readings inside anomaly events; 0 = normal data only "
        "(default 0.02)",
    )
    parser.add_argument(
        "--kinds",
        type=kinds,
        default=ANOMALY_KINDS,
        metavar="K[,K...]",
        help="anomaly kinds to inject (default: all)",
    )
    parser.add_argument("--seed", type=random_seed, default=0, metavar="K", help="default 0")
    parser.add_argument(
        "--start",
        type=timestamp,
        metavar="ISO",
        help="timestamp of the first reading, ISO-8601 or epoch ms (default: now to Kafka, "
        f"{format_ts(DEFAULT_START_MS)} to a file)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE_OR_DIR",
        help="write a .csv or .parquet file, or a folder (ending in /) with one CSV per sensor, "
        "instead of sending to Kafka; the injected events go beside it as JSON (NAME.events.json, "
        "or events.json in the folder)",
    )
    add_kafka_options(parser)
    add_quiet_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.out is not None:
        check_out(args.out)
        start_ms = DEFAULT_START_MS if args.start is None else args.start
    else:
        start_ms = time.time_ns() // 1_000_000 if args.start is None else args.start
    min_gap = GAP_WINDOWS * settings.window_size
    simulator = Simulator(
        args.sensors,
        length_for(args.duration, args.rate, args.sensors),
        rate=args.rate,
        channels=args.channels,
        anomaly_rate=args.anomaly_rate,
        seed=args.seed,
        start_ms=start_ms,
        kinds=args.kinds,
        min_gap=min_gap,
    )
    events = simulator.events
    if not events and args.anomaly_rate > 0:
        warn_no_events(args, simulator.length, min_gap)
    detail = (
        f"{args.sensors} sensors, {len(events)} anomaly events, "
        f"{sum(e.stop - e.start for e in events)} labelled readings"
    )
    if args.out is not None:
        with progress_bar(simulator.total, args.quiet) as bar:
            paths = write_run(simulator, args.out, progress=bar.update)
        print(f"wrote {simulator.total} readings ({detail}) to {args.out}; events in {paths[-1]}")
        return 0
    readings = ((reading.ts_ms, reading) for reading in simulator.readings())
    with ReadingSender(settings) as sender, progress_bar(simulator.total, args.quiet) as bar:
        sent = sender.send(readings, speed=1.0, progress=bar.update)
    print(
        f"sent {sent} readings ({detail}) to topic {settings.readings_topic!r} at "
        f"{settings.bootstrap_servers}"
    )
    return 0


def warn_no_events(args: argparse.Namespace, length: int, min_gap: int) -> None:
    """Say that the run holds no anomaly event, and how long a run would hold some."""
    per_event = readings_per_event(args.kinds, args.anomaly_rate)
    # A sensor's events start after min_gap readings, one per per_event on average.
    seconds = (min_gap + per_event) * args.sensors / args.rate
    log.warning(
        "no anomaly event fits in %d readings per sensor: events come after the first %d "
        "(%d windows), about one per %.0f readings of a sensor at --anomaly-rate %g; give a "
        "longer --duration (e.g. %.0f) or a higher --anomaly-rate",
        length,
        min_gap,
        GAP_WINDOWS,
        per_event,
        args.anomaly_rate,
        seconds,
    )


def progress_bar(total: int, quiet: bool = False) -> tqdm:
    """A readings counter on stderr (none when ``quiet``); refreshed rarely when stderr is
    a log, not a terminal."""
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        disable=quiet,
        unit=" readings",
        unit_scale=True,
        file=sys.stderr,
        mininterval=0.2 if interactive else 10.0,
        dynamic_ncols=interactive,
    )
