"""Options shared by several commands, and their translation into Settings."""

from __future__ import annotations

import argparse
from typing import Any

from streamae.config import Settings


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers (default: STREAMAE_BOOTSTRAP_SERVERS or 127.0.0.1:9092)",
    )


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings with the command's options (those present and given) taking precedence."""
    names = {"bootstrap_servers", "group_id", "model_path", "window_size", "stride", "device"}
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return Settings.load(**given, **extra)
