"""Options shared by several commands, and their translation into Settings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from streamae.config import Settings
from streamae.exceptions import ConfigError


class HelpFormatter(argparse.HelpFormatter):
    """Wraps one-paragraph texts (descriptions) to the terminal; keeps laid-out ones (epilogs)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


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


def report_path(path: Path | None, option: str) -> None:
    """Check where a JSON report goes before the work that makes it.

    A new file (its folder is created) or an earlier report of ``evaluate`` or
    ``benchmark``; anything else there (data, labels, a model) is never overwritten.
    """
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file, e.g. {path / 'report.json'}")
    if path.exists() and not _is_report(path):
        raise ConfigError(
            f"{option} {path}: exists and is not a report of evaluate or benchmark; left as "
            "it is (choose another file, or remove it)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot create its folder: {exc.strerror or exc}"
        ) from None


def write_report(path: Path, text: str, option: str) -> None:
    """Write a report checked by ``report_path``; a failure is the option's error."""
    try:
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot write the report: {exc.strerror or exc}"
        ) from None


def _is_report(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(doc, dict):
        return False
    return {"per_file", "total"} <= doc.keys() or {"benchmark", "evaluation"} <= doc.keys()
