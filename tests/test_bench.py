"""``streamae bench``: one quick end-to-end run against the session broker, and its refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from streamae.bench import KEYS, model
from streamae.exceptions import StreamaeError


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMAE_")}
    return subprocess.run(
        [sys.executable, "-m", "streamae", "bench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def quick_run(kafka_broker) -> subprocess.CompletedProcess[str]:
    """One ``--quick --json`` run against the session broker, shared by the tests below."""
    return bench("--quick", "--json", "--bootstrap-servers", kafka_broker.bootstrap)


@pytest.fixture(scope="module")
def quick_result(quick_run: subprocess.CompletedProcess[str]) -> dict:
    assert quick_run.returncode == 0, quick_run.stderr[-3000:]
    return json.loads(quick_run.stdout.strip().splitlines()[-1])


@pytest.mark.kafka
def test_quick_json_run_reports_every_figure(quick_result: dict) -> None:
    missing = [key for key in KEYS if key not in quick_result]
    assert not missing
    not_positive = {key: quick_result[key] for key in KEYS if not quick_result[key] > 0}
    assert not not_positive
    assert quick_result["model"]["arch"] == "lstm" and quick_result["model"]["window"] == 64
    # Runs on different hosts compare only with the host named.
    assert quick_result["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert quick_result["torch_version"] == torch.__version__
    # The ceiling is the better of two ways to use every core; both ran.
    for name in ("model_ceiling", "model_ceiling_c8"):
        both = [quick_result[f"{name}_{way}_windows_per_s"] for way in ("threads", "processes")]
        assert min(both) > 0 and quick_result[f"{name}_windows_per_s"] == max(both)
    assert 0 < quick_result["latency_cpu_busy"] <= 1  # the paced phase kept the cores busy
    assert quick_result["model_ceiling_over_naive"] == pytest.approx(
        quick_result["model_ceiling_windows_per_s"] / quick_result["naive_windows_per_s"]
    )


@pytest.mark.kafka
def test_the_monitor_scored_every_window_and_latency_was_measured(quick_result: dict) -> None:
    r = quick_result
    # Stride 1: every reading after the first W-1 of its sensor completes a window;
    # a rewind (at-least-once) scores the windows it replays again.
    expected = r["sensors"] * (r["readings"] // r["sensors"] - r["window"] + 1)
    assert r["monitor_complete"] is True
    assert r["monitor_committed"] == r["readings"]
    if r["monitor_rewinds"] == 0:
        assert r["monitor_windows"] == expected
    else:
        assert r["monitor_windows"] >= expected
    assert r["latency_samples"] > 0
    assert r["latency_p50_ms"] <= r["latency_p95_ms"] <= r["latency_p99_ms"]
    assert r["memory_sensors"] > 0


@pytest.mark.kafka
def test_progress_goes_to_stderr_and_the_topics_are_deleted(
    quick_run: subprocess.CompletedProcess[str], kafka_settings
) -> None:
    from streamae.kafka.clients import make_admin

    assert "bench:" in quick_run.stderr
    assert len(quick_run.stdout.strip().splitlines()) == 1
    admin = make_admin(kafka_settings)
    try:
        left = [name for name in admin.list_topics() if name.startswith("bench-")]
    finally:
        admin.close()
    assert left == []


@pytest.mark.kafka
def test_the_table_names_every_phase(quick_result: dict) -> None:
    from streamae.cli.bench import report

    text = report(quick_result)

    for phase in ("model ceiling", "naive", "consume ceiling", "monitor", "latency", "memory"):
        assert phase in text
    assert f"{quick_result['monitor_readings_per_s']:,.0f} readings/s" in text


def test_a_remote_broker_is_refused_without_a_traceback() -> None:
    done = bench("--quick", "--bootstrap-servers", "kafka.example.com:9092", timeout=120)

    assert done.returncode == 2
    assert "not a loopback address" in done.stderr
    assert "Traceback" not in done.stderr


def test_fewer_readings_per_sensor_than_the_window_is_refused() -> None:
    done = bench("--readings", "100", "--sensors", "10", timeout=120)

    assert done.returncode == 2
    assert "10 per sensor" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_broker_is_reported_before_the_model_phases() -> None:
    done = bench("--quick", "--bootstrap-servers", "127.0.0.1:1", timeout=120)

    assert done.returncode == 2
    assert "127.0.0.1:1 is not reachable" in done.stderr
    assert "bench: training" not in done.stderr  # the first phase's progress line
    assert "Traceback" not in done.stderr


def test_a_model_scorer_that_fails_is_reported_with_its_cause(tmp_path) -> None:
    with pytest.raises(
        StreamaeError, match="a model scorer of the benchmark failed: ArtifactError"
    ):
        model.ceiling_group(str(tmp_path / "no-model"), 2, 1, batch=8, seconds=0.1)
