"""``streamae monitor``: score the readings topic live, publish scores and alerts."""

from __future__ import annotations

import argparse
import signal
import threading

from streamae.cli.options import (
    HelpFormatter,
    add_kafka_options,
    add_profile_option,
    positive_float,
    profile_from,
    settings_from,
)
from streamae.messages import Alert, format_ts
from streamae.profile import warn_mismatches

EPILOG = """\
examples:
  streamae monitor --model models/pump --print-alerts
  streamae monitor --model models/pump --group plant-a --instance-id monitor-1
  STREAMAE_BOOTSTRAP_SERVERS=kafka:9092 streamae monitor --model models/plant \\
      --model-map 'pump-*=models/pump'     # pumps get their own model
  streamae monitor --model models/pump --config benchmarks/nab.toml   # the benchmark's bar and alerts
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
        help="score the readings topic live and publish scores and alerts",
        description=(
            "Join a consumer group on the readings topic, score every sensor's sliding "
            "windows with a trained model, and publish scores, alerts and dead letters. "
            "Each sensor's state is checkpointed to the state topic, so a restart or a "
            "rebalance resumes it without loss or warm-up, the sensor memory included (on "
            "with STREAMAE_SENSOR_MEMORY or a profile such as benchmarks/nab.toml). "
            "Delivery is at-least-once "
            "(results, then state, then offsets) or exactly-once (one Kafka transaction "
            "per batch; read the topics with isolation level read_committed). "
            "Run several monitors with the same --group to share the partitions. "
            "Stops cleanly on Ctrl-C / SIGTERM."
        ),
    )
    parser.add_argument(
        "--model",
        dest="model_path",
        metavar="MODEL_DIR",
        help="default model folder from `streamae train` (default: STREAMAE_MODEL_PATH)",
    )
    add_kafka_options(parser)
    parser.add_argument(
        "--group",
        dest="group_id",
        metavar="G",
        help="consumer group id (default: STREAMAE_GROUP_ID or streamae-monitor)",
    )
    parser.add_argument(
        "--delivery",
        choices=("at-least-once", "exactly-once"),
        help="delivery guarantee (default: STREAMAE_DELIVERY or at-least-once)",
    )
    parser.add_argument(
        "--instance-id",
        metavar="NAME",
        help="stable name of this monitor, unique in its group, e.g. the pod name "
        "(default: STREAMAE_INSTANCE_ID or the host name)",
    )
    parser.add_argument(
        "--model-map",
        metavar="PATTERN=DIR,...",
        help="models for some sensors, e.g. 'pump-*=models/pump,fan-*=models/fan' "
        "(shell-style patterns, first match wins; default: STREAMAE_MODEL_MAP)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="P",
        help="Prometheus /metrics port, 0 = off (default: STREAMAE_METRICS_PORT or 9108)",
    )
    parser.add_argument(
        "--max-runtime",
        type=positive_float,
        metavar="S",
        help="stop cleanly after S seconds (default: run until stopped)",
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="a new group starts at the oldest readings (default: only new ones)",
    )
    add_profile_option(
        parser,
        "uses its [settings] but window_size (the model fixes its window, detector and "
        "training; a model trained otherwise is warned about)",
    )
    parser.add_argument(
        "--print-alerts",
        action="store_true",
        help="also print each alert on stdout once it is published",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Heavy imports (torch via the models) only when the command runs, not for --help.
    from streamae.monitor.models import load_detectors
    from streamae.monitor.service import Monitor

    profile = profile_from(args)
    settings = settings_from(
        args,
        profile,
        model_map=args.model_map,
        metrics_port=args.metrics_port,
        delivery=args.delivery,
        instance_id=args.instance_id,
    )
    detectors = load_detectors(settings)
    for detector in detectors.detectors():
        warn_mismatches(profile, detector, "--model / --model-map")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    monitor = Monitor(
        settings,
        detectors,
        from_beginning=args.from_beginning,
        on_alert=print_alert if args.print_alerts else None,
    )
    monitor.run(stop, args.max_runtime)
    return 0


def print_alert(alert: Alert) -> None:
    when = format_ts(alert.closed_at if alert.state == "closed" else alert.opened_at)
    channels = ", ".join(alert.top_channels)
    print(
        f"{when}  ALERT {alert.state:<6} {alert.sensor_id}  peak {alert.peak_score:.3g} "
        f"(threshold {alert.threshold:.3g})  channels: {channels}  id {alert.alert_id}",
        flush=True,
    )
