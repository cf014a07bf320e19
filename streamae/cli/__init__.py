"""The ``streamae`` command line: one module per command, each with ``register``.

A user mistake (any ``StreamaeError``) prints one clear line and exits 2; Ctrl-C
exits 130; neither prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import MutableMapping

from streamae.exceptions import StreamaeError

# Command modules under streamae.cli with their one-line summaries, in --help order.
# Only the command being run is imported, so `streamae broker status` does not
# pay for importing torch.
COMMANDS = {
    "broker": "start, stop or check the local Apache Kafka broker",
    "simulate": "produce simulated multi-sensor readings (to Kafka or a file)",
    "replay": "send a recorded CSV/Parquet sensor series to the readings topic",
    "train": "train an autoencoder on normal data and save the model artifact",
    "detect": "detect anomalies offline in a CSV file or folder",
    "monitor": "score live readings from Kafka and publish scores and alerts",
    "dashboard": "run the live Streamlit dashboard",
    "evaluate": "score detections against labels (point, event, NAB)",
    "benchmark": "detect and evaluate over the NAB or SKAB corpus",
    "bench": "measure throughput and latency through a real broker",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: same format, exit 2
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser, with full options for the command named in ``argv`` (if any)."""
    parser = _Parser(
        prog="streamae",
        description="Streaming sensor anomaly monitor (Kafka + an LSTM or convolutional autoencoder).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    chosen = next((arg for arg in argv if arg in COMMANDS), None)
    for name, summary in COMMANDS.items():
        if name == chosen:
            importlib.import_module(f"streamae.cli.{name}").register(commands)
        else:
            commands.add_parser(name, help=summary, description=summary)
    return parser


def _without_kafka_traceback(record: logging.LogRecord) -> bool:
    """kafka-python logs some socket errors with a traceback of its own internals (e.g.
    a connection reset while a client closes); its message says what happened."""
    if record.name.startswith("kafka"):
        record.exc_info = None
        record.exc_text = None
    return True


def pin_openmp(env: MutableMapping[str, str] = os.environ) -> None:
    """Start torch's OpenMP runtime with ``STREAMAE_TORCH_THREADS`` threads, unless
    ``OMP_NUM_THREADS`` says otherwise; must run before torch is imported, so it reads
    the variable itself rather than through ``Settings`` (which reports a bad value).

    ``torch.set_num_threads`` later is not enough: the runtime then keeps an extra
    worker, and while another process wants the core, each forward pass waits on
    it (measured: 1 thread scored 25-30k windows/s beside a busy process this way,
    7.5k without).
    """
    threads = env.get("STREAMAE_TORCH_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        env.setdefault("OMP_NUM_THREADS", threads)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pin_openmp()
    args = build_parser(argv).parse_args(argv)
    level = logging.INFO
    if args.verbose:
        level = logging.DEBUG
    elif getattr(args, "quiet", False):  # where a command has --quiet: warnings and errors
        level = logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every failed connection attempt; our own error says it once.
    logging.getLogger("kafka").setLevel(logging.INFO if args.verbose else logging.CRITICAL)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_without_kafka_traceback)
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
