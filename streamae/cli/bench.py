"""``streamae bench``: throughput, latency and memory of the monitor through a real broker."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from streamae.cli.options import add_kafka_options, positive_int

_MB = 1024 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure throughput and latency through a real broker",
        description=(
            "Measure, on this machine: the model's batched speed on every core (the "
            "ceiling: the better of one process's threads and the monitor group's "
            "processes) and "
            "one-window-at-a-time speed (the naive baseline); how fast a bare consumer "
            "reads and decodes readings; how fast the real monitor scores N preloaded "
            "readings (stride 1: every reading completes a window); the latency from "
            "produce to published score at half that rate; and the memory per sensor. "
            "Starts its own Kafka broker in a temporary folder unless given one "
            "(127.0.0.1 only); its topics are deleted at the end. Progress goes to stderr."
        ),
    )
    add_kafka_options(
        parser,
        help_text="a running broker on this machine (a loopback address; default: start its own)",
    )
    parser.add_argument(
        "--readings",
        type=positive_int,
        metavar="N",
        help="readings the monitor scores (default: 500000; --quick: 6000)",
    )
    parser.add_argument(
        "--sensors",
        type=positive_int,
        metavar="S",
        help="sensors the readings are spread over (default: 1000; --quick: 40)",
    )
    parser.add_argument(
        "--instances",
        type=positive_int,
        metavar="N",
        help="monitor processes in the group, each scoring with cores/N torch threads "
        "(default: one per core, at most one per readings partition)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and short phases: a smoke test"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the figures as one JSON object on the last line of stdout",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # torch and kafka-python only when the command runs, not for --help.
    from streamae.bench import BenchConfig, run_bench

    config = BenchConfig.quick() if args.quick else BenchConfig()
    sizes = {"readings": args.readings, "sensors": args.sensors, "instances": args.instances}
    config = dataclasses.replace(config, **{k: v for k, v in sizes.items() if v is not None})
    result = run_bench(config, args.bootstrap_servers, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(result, sort_keys=True), flush=True)
    else:
        print(report(result), flush=True)
    return 0


def report(result: dict[str, Any]) -> str:
    """The figures as a short table for people."""
    r = result
    rows = [
        (f"model ceiling (batch, C={r['channels']})", _ceiling(r, "model_ceiling")),
        ("model ceiling (batch, C=8)", _ceiling(r, "model_ceiling_c8")),
        ("naive (one window per pass)", f"{r['naive_windows_per_s']:,.0f} windows/s"),
        ("consume ceiling (read+decode)", f"{r['consume_ceiling_readings_per_s']:,.0f} readings/s"),
        (
            "monitor (stride 1)",
            f"{r['monitor_readings_per_s']:,.0f} readings/s ({r['monitor_instances']} "
            f"instance(s) x {r['monitor_torch_threads']} torch thread(s))",
        ),
        ("  / model, / consume", f"{r['monitor_over_model']:.2f}, {r['monitor_over_consume']:.2f}"),
        (
            "  / naive",
            f"{r['monitor_over_naive']:.1f}x (the model ceiling: "
            f"{r['model_ceiling_over_naive']:.1f}x)",
        ),
        (
            "  per CPU-second",
            f"{r['monitor_readings_per_cpu_s']:,.0f} readings; / model "
            f"{r['monitor_over_model_cpu']:.2f}, / consume {r['monitor_over_consume_cpu']:.2f}",
        ),
        (
            f"latency at {r['latency_offered_readings_per_s']:,.0f} readings/s",
            f"p50 {r['latency_p50_ms']:.0f} ms, p95 {r['latency_p95_ms']:.0f} ms, "
            f"p99 {r['latency_p99_ms']:.0f} ms{_busy(r.get('latency_cpu_busy'))}",
        ),
        (
            f"memory ({r['memory_sensors']:,} sensors)",
            f"RSS {r['rss_bytes_per_sensor']:,.0f} B/sensor; live state "
            f"{r['state_bytes_per_sensor']:,.0f} B/sensor, "
            f"{r['state_bytes_per_sensor_channel']:,.0f} B/sensor-channel beyond the window",
        ),
        (
            "peak RSS (monitor, memory run)",
            f"{r['monitor_peak_rss_bytes'] / _MB:,.0f} MB, {r['memory_peak_rss_bytes'] / _MB:,.0f} MB",
        ),
        (
            "machine",
            f"{r['cpus']} CPUs ({r['cpu_model'] or 'unnamed'}, {r['cpu_capability']}), "
            f"torch {r['torch_version']}, load {r['load_average_start']} → {r['load_average_end']}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    head = (
        f"streamae bench: {r['readings']:,} readings, {r['sensors']:,} sensors, "
        f"window {r['window']}, model {r['model']}"
    )
    return "\n".join([head, *(f"  {name:<{width}}  {value}" for name, value in rows)])


def _ceiling(r: dict[str, Any], name: str) -> str:
    """The better way to use every core, and both ways' figures."""
    return (
        f"{r[f'{name}_windows_per_s']:,.0f} windows/s ({r['monitor_instances']} processes x "
        f"{r['monitor_torch_threads']} thread(s) {r[f'{name}_processes_windows_per_s']:,.0f}; "
        f"1 process x {r['torch_threads']} "
        f"threads {r[f'{name}_threads_windows_per_s']:,.0f})"
    )


def _busy(share: float | None) -> str:
    return "" if share is None else f"; the cores {share:.0%} busy meanwhile"
