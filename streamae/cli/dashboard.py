"""``streamae dashboard``: run the live Streamlit dashboard (scores, thresholds, alerts)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from streamae.cli.options import add_kafka_options, settings_from
from streamae.config import Secret, Settings
from streamae.exceptions import ConfigError

# The page ships inside the package, so an installed streamae runs it too.
APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
STOP_TIMEOUT_S = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard",
        help="run the live dashboard (Streamlit) of scores, thresholds and alerts",
        description=(
            "Serve the live dashboard: every sensor's status, its reconstruction error "
            "against the threshold with alert periods shaded, its raw channels, and the "
            "alert feed, refreshed every second from the scores and alerts topics. It "
            "binds to 127.0.0.1 unless told otherwise. Ctrl-C stops it."
        ),
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="P",
        help="HTTP port (default: STREAMAE_DASHBOARD_PORT or 8501)",
    )
    parser.add_argument(
        "--address",
        metavar="A",
        help="address to listen on (default: STREAMAE_DASHBOARD_ADDRESS or 127.0.0.1; "
        "0.0.0.0 serves every network interface)",
    )
    add_kafka_options(parser)
    parser.add_argument(
        "--group",
        dest="group_id",
        metavar="ID",
        help="the monitors' consumer group, whose lag the page shows "
        "(default: STREAMAE_GROUP_ID or streamae-monitor)",
    )
    parser.add_argument(
        "--lookback",
        type=float,
        metavar="S",
        help="on start, show the last S seconds of scores and alerts "
        "(default: STREAMAE_DASHBOARD_LOOKBACK_S or 3600)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(
        args,
        dashboard_port=args.port,
        dashboard_address=args.address,
        dashboard_lookback_s=args.lookback,
    )
    check_port_free(settings.dashboard_address, settings.dashboard_port)
    url = f"http://{settings.dashboard_address}:{settings.dashboard_port}"
    print(
        f"streamae dashboard: serving {url} (Kafka {settings.bootstrap_servers}, topics "
        f"{settings.scores_topic!r} and {settings.alerts_topic!r}); Ctrl-C stops it",
        file=sys.stderr,
        flush=True,
    )
    env = {**os.environ, **settings_env(settings)}
    child = subprocess.Popen(streamlit_command(settings), env=env)
    # SIGTERM (service managers, containers) stops the server like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGINT))
    try:
        return child.wait()
    except KeyboardInterrupt:
        # The terminal sent Ctrl-C to Streamlit as well; make sure, then let it finish.
        child.send_signal(signal.SIGINT)
        try:
            child.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        print("streamae dashboard: stopped", file=sys.stderr)
        return 0


def streamlit_command(settings: Settings) -> list[str]:
    """The ``streamlit run`` command line serving the page with these settings."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(settings.dashboard_port),
        "--server.address",
        settings.dashboard_address,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        # Operators get the page, not Streamlit's developer menu and deploy button.
        "--client.toolbarMode",
        "minimal",
    ]


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as its ``STREAMAE_*`` variable, so the page loads the same Settings."""
    env = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        env[Settings.env_var(field.name)] = value.get() if isinstance(value, Secret) else str(value)
    return env


def check_port_free(address: str, port: int) -> None:
    """Fail with a clear message now rather than from deep inside Streamlit."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--address {address!r} is not a usable address ({exc})") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {address} is already in use; pick another with --port"
                ) from None
            raise ConfigError(f"cannot listen on {address}:{port} ({exc.strerror})") from None
