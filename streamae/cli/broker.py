"""``streamae broker start|stop|status``: the project's own local Apache Kafka broker."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamae.cli.options import positive_float
from streamae.config import Settings
from streamae.exceptions import ConfigError
from streamae.kafka.broker import DEFAULT_PORT, SCRAM_MECHANISM, LocalBroker, default_data_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="start, stop or inspect a local Apache Kafka broker",
        description="Run a single-node Apache Kafka broker (KRaft) on 127.0.0.1. The jars are "
        "downloaded with Maven on first use and cached (STREAMAE_KAFKA_CACHE).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    start = actions.add_parser(
        "start",
        help="start the broker in the background and wait until it answers",
        description="Start the broker detached from this terminal; it runs until "
        "`streamae broker stop`. A second start on the same data dir reuses its data.",
    )
    _add_data_dir(start)
    start.add_argument(
        "--port", type=_port, help=f"client port (default: last run's, else {DEFAULT_PORT})"
    )
    start.add_argument(
        "--controller-port", type=_port, help="KRaft controller port (default: a free one)"
    )
    start.add_argument(
        "--sasl-port", type=_port, help=f"also listen for SASL_PLAINTEXT ({SCRAM_MECHANISM})"
    )
    start.add_argument(
        "--sasl-user", help="the SASL user to create (default: STREAMAE_SASL_USERNAME)"
    )
    start.add_argument(
        "--sasl-password",
        help="its password (default: STREAMAE_SASL_PASSWORD, which keeps it out of `ps`)",
    )
    start.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the broker to answer (default: 60)",
    )
    start.set_defaults(run=run_start)

    stop = actions.add_parser(
        "stop",
        help="stop the broker started from a data dir",
        description="Stop the broker of --data-dir (SIGTERM, then SIGKILL after --timeout); "
        "its data stays for the next start.",
    )
    _add_data_dir(stop)
    stop.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait after SIGTERM before SIGKILL (default: 30)",
    )
    stop.set_defaults(run=run_stop)

    status = actions.add_parser(
        "status",
        help="say whether the broker runs (exit 0) or not (exit 1)",
        description="Say whether the broker of --data-dir runs and where it listens: exit 0 "
        "if it runs, 1 if not.",
    )
    _add_data_dir(status)
    status.set_defaults(run=run_status)


def run_start(args: argparse.Namespace) -> int:
    sasl_user = sasl_password = ""
    if args.sasl_port:
        settings = Settings.load()
        sasl_user = args.sasl_user or settings.sasl_username
        sasl_password = args.sasl_password or settings.sasl_password.get()
        if not (sasl_user and sasl_password):
            raise ConfigError(
                "--sasl-port needs --sasl-user and --sasl-password "
                "(or STREAMAE_SASL_USERNAME and STREAMAE_SASL_PASSWORD)"
            )
    broker = LocalBroker(
        args.data_dir,
        port=args.port,
        controller_port=args.controller_port,
        sasl_port=args.sasl_port,
        sasl_user=sasl_user,
        sasl_password=sasl_password,
        start_timeout_s=args.timeout,
    )
    broker.start()
    print(f"Apache Kafka {broker.version or '(unknown version)'} running at {broker.bootstrap}")
    if broker.sasl_bootstrap:
        print(
            f"SASL_PLAINTEXT ({SCRAM_MECHANISM}) at {broker.sasl_bootstrap} "
            f"for user {broker.sasl_user!r}"
        )
    print(f"pid {broker.pid}, data {broker.data_dir}, log {broker.log_file}")
    print(f"stop it with: streamae broker stop --data-dir {broker.data_dir}")
    return 0


def run_stop(args: argparse.Namespace) -> int:
    broker = LocalBroker(args.data_dir)
    if broker.stop(timeout_s=args.timeout):
        print(f"stopped the Kafka broker of {broker.data_dir}")
    else:
        print(f"no Kafka broker is running from {broker.data_dir}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    broker = LocalBroker(args.data_dir)
    pid = broker.pid
    if pid is None:
        print(f"not running (data dir {broker.data_dir})")
        return 1
    print(f"running: Apache Kafka {broker.version or '(unknown version)'} at {broker.bootstrap}")
    sasl_port = broker.recorded_ports().get("sasl_port")
    if sasl_port:
        print(f"SASL_PLAINTEXT ({SCRAM_MECHANISM}) at 127.0.0.1:{sasl_port}")
    print(f"pid {pid}, data {broker.data_dir}, log {broker.log_file}")
    return 0


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        metavar="DIR",
        help="where the broker keeps its data, log and pid (default: %(default)s)",
    )


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value
