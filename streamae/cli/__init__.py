"""The ``streamae`` command line: one module per command, each with ``register``.

A user mistake (any ``StreamaeError``) prints one clear line and exits 2; Ctrl-C
exits 130; neither prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from streamae.exceptions import StreamaeError

# Command modules under streamae.cli, in the order --help lists them.
COMMANDS = (
    "broker",
    "simulate",
    "replay",
    "train",
    "detect",
    "monitor",
    "dashboard",
    "evaluate",
    "benchmark",
    "bench",
)

log = logging.getLogger("streamae")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: same format, exit 2
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="streamae",
        description="Streaming sensor anomaly monitor (Kafka + LSTM autoencoder).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"streamae.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"streamae.cli.{name}":
                raise
            continue
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kafka").setLevel(logging.WARNING if not args.verbose else logging.INFO)
    try:
        return int(args.run(args) or 0)
    except StreamaeError as exc:
        sys.stderr.write(f"streamae {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"streamae {args.command}: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
