"""``streamae monitor`` with the tests' per-sensor z-score detectors instead of a model folder.

The process tests need a detector that catches every simulated spike and scores a
window the same whatever batch it arrives in; everything else (the CLI, signals,
the Kafka loop) is the real thing. Usage::

    python tests/monitor/zscore_monitor.py SPEC_JSON monitor [monitor options]

SPEC_JSON is a ``scenario.DetectorSpec`` as JSON.
"""

from __future__ import annotations

import json
import sys

from scenario import DetectorSpec  # run as a script: this folder is on sys.path

import streamae.monitor.models
from streamae.cli import main as cli_main


def main(argv: list[str]) -> int:
    spec = DetectorSpec(**json.loads(argv[0]))
    streamae.monitor.models.load_detectors = lambda settings: spec.registry()
    return cli_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
