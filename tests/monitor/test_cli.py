"""``streamae monitor`` as a user runs it: a real model folder, signals, exit codes."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from operator import attrgetter

import numpy as np
import pytest

from streamae import artifact
from streamae.cli import main
from streamae.messages import Reading, decode_alert, decode_dead_letter, decode_score
from streamae.simulate import simulate
from streamae.thresholds.base import MIN_BAR
from streamae.thresholds.quantile import quantile_bar

from .conftest import settings_env


def run_cli(*args: str, env: dict[str, str], timeout_s: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamae", "monitor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["monitor", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--model", "--bootstrap-servers", "--group", "--model-map", "--metrics-port"):
        assert option in out
    assert "--max-runtime" in out and "--from-beginning" in out
    assert "--delivery" in out and "exactly-once" in out and "--instance-id" in out


def test_no_model_is_one_clear_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.delenv("STREAMAE_MODEL_PATH", raising=False)
    assert main(["monitor", "--bootstrap-servers", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "no model given: pass --model MODEL_DIR" in err and "Traceback" not in err


def test_an_unreachable_broker_is_a_clear_error_without_traceback(tiny_models):
    server = f"127.0.0.1:{closed_port()}"
    result = run_cli("--model", str(tiny_models[3]), "--bootstrap-servers", server, env=_env())
    print(f"\nunreachable broker: exit {result.returncode}: {result.stderr.strip()[-300:]}")
    assert result.returncode == 2
    assert f"Kafka at {server} is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.kafka
def test_refused_credentials_are_a_clear_error_without_traceback(make_kafka_settings, tiny_models):
    settings = make_kafka_settings(sasl=True, sasl_password="not-the-password")
    result = run_cli("--model", str(tiny_models[3]), env=_env(settings_env(settings)))
    print(f"\nwrong password: exit {result.returncode}: {result.stderr.strip()[-300:]}")
    assert result.returncode == 2
    assert "refused user 'streamae-test'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.kafka
def test_a_model_map_routes_sensors_and_sigterm_stops_cleanly(
    monitor_settings, kio, tiny_models, monitor_processes
):
    """sensor-* → the default 3-channel model; one-* → a 1-channel model by the map."""
    settings = monitor_settings
    three = simulate(sensors=1, readings_per_sensor=40, channels=3, seed=2).readings()
    one = simulate(sensors=1, readings_per_sensor=40, channels=1, seed=2).readings()
    mapped = [Reading("one-1", r.ts_ms, r.values) for r in one]
    # A 3-channel reading from a sensor the map gives to the 1-channel model.
    wrong = [Reading("one-2", r.ts_ms, r.values) for r in three[:5]]
    kio.produce_readings(three + mapped + wrong)
    proc = monitor_processes(
        settings, "--model-map", f"one-*={tiny_models[1]}", model_dir=tiny_models[3]
    )
    kio.wait_consumed(settings.group_id, settings.readings_topic, alive=proc.check_alive)
    time.sleep(0.5)  # let it idle in poll(): SIGTERM must still end it cleanly
    code = proc.stop()
    print(f"\nmonitor CLI: exit {code} after SIGTERM; log tail:\n{proc.log()[-600:]}")
    assert code == 0
    assert "monitor stopped: 85 readings consumed" in proc.log()
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic)]
    letters = [decode_dead_letter(r.value) for r in kio.read(settings.dead_letter_topic)]
    versions = {channels: artifact.load(path).version for channels, path in tiny_models.items()}
    by_sensor = {s: [x for x in scores if x.sensor_id == s] for s in ("sensor-000", "one-1")}
    assert len(by_sensor["sensor-000"]) == len(by_sensor["one-1"]) == 40 - 8 + 1
    assert {x.model_version for x in by_sensor["sensor-000"]} == {versions[3]}
    assert {x.model_version for x in by_sensor["one-1"]} == {versions[1]}
    assert len(letters) == 5
    one_channel = artifact.load(tiny_models[1]).channels[0]
    assert all(f"do not match the model's {{{one_channel}}}" in x.error for x in letters)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMAE_")}
    return env | (extra or {})


@pytest.mark.kafka
def test_max_runtime_ends_the_monitor_cleanly(monitor_settings, tiny_models):
    result = run_cli(
        "--model",
        str(tiny_models[3]),
        "--max-runtime",
        "2",
        "--metrics-port",
        "0",
        env=_env(settings_env(monitor_settings)),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "monitor stopped: 0 readings consumed" in result.stderr


@pytest.mark.kafka
def test_a_profile_sets_the_monitor_s_bar_and_the_environment_wins_over_it(
    monitor_settings, kio, tiny_models, monitor_processes, tmp_path
):
    """--config gives the live monitor the profile's [settings]; STREAMAE_* still win."""
    profile = tmp_path / "profile.toml"
    profile.write_text(
        'detector = "conv"\n[settings]\nthreshold_policy = "calibrated"\n'
        "threshold_quantile = 0.5\nthreshold_margin = 2.0\n"
    )
    settings = monitor_settings.replace(threshold_margin=3.0)  # its variable beats the file
    kio.produce_readings(simulate(sensors=1, readings_per_sensor=40, channels=3, seed=2).readings())
    proc = monitor_processes(
        settings,
        "--config",
        str(profile),
        model_dir=tiny_models[3],
        unset=("threshold_policy", "threshold_quantile"),
    )
    kio.wait_consumed(settings.group_id, settings.readings_topic, alive=proc.check_alive)
    assert proc.stop() == 0
    scores = [decode_score(r.value) for r in kio.read(settings.scores_topic)]
    normal = artifact.load(tiny_models[3]).normal_scores
    bar = max(quantile_bar(np.asarray(normal, np.float64), 0.5, 3.0), MIN_BAR)
    assert monitor_settings.threshold_policy != "calibrated"
    assert len(scores) == 40 - 8 + 1
    assert [s.threshold for s in scores] == pytest.approx([bar] * len(scores))


def shipped_profile_model(tmp_path):
    """benchmarks/nab.toml, its profile, and a small model trained with it on simulated data."""
    from streamae.benchmark import PROFILES_DIR
    from streamae.profile import load_profile
    from streamae.training import config_from_options, train_detector

    path = PROFILES_DIR / "nab.toml"
    profile = load_profile(path)
    small = {**profile.training, "epochs": 2, "hidden": 8, "latent": 4}
    config = config_from_options(profile.settings["window_size"], "cpu", small)
    normal = simulate(sensors=2, readings_per_sensor=600, channels=2, seed=1)
    model = artifact.save(train_detector(normal.series, config, progress=False), tmp_path / "m")
    return path, profile, model


@pytest.mark.kafka
def test_the_monitor_with_the_shipped_profile_raises_the_alerts_detect_raises(
    monitor_settings, kio, monitor_processes, tmp_path
):
    """benchmarks/nab.toml live (calibrated bar, re-arm, fade, sensor memory) = offline."""
    from streamae.detect import detect_series
    from streamae.profile import layered_settings

    path, profile, model = shipped_profile_model(tmp_path)
    # Past the sensor memory's delay (2000 windows), so remembered codes are used too.
    run = simulate(sensors=2, readings_per_sensor=2600, channels=2, anomaly_rate=0.05, seed=1)
    offline = detect_series(run.series, artifact.load(model), layered_settings(profile, env={}))

    kio.produce_readings(run.readings())
    proc = monitor_processes(
        monitor_settings, "--config", str(path), model_dir=model, unset=profile.settings
    )
    kio.wait_consumed(
        monitor_settings.group_id, monitor_settings.readings_topic, alive=proc.check_alive
    )
    assert proc.stop() == 0
    live = [decode_alert(r.value) for r in kio.read(monitor_settings.alerts_topic)]
    assert len(offline.alerts) >= 2
    key = attrgetter("sensor_id", "opened_at", "state")
    print(f"\n{len(offline.alerts)} alert events offline, {len(live)} live")
    assert sorted(live, key=key) == sorted(offline.alerts, key=key)


@pytest.mark.kafka
@pytest.mark.parametrize("restart", ["stop", "kill -9", "kill -9, exactly-once"])
def test_a_restarted_monitor_resumes_its_sensor_memory_and_scores_as_if_never_stopped(
    monitor_settings, kio, monitor_processes, tmp_path, restart
):
    """benchmarks/nab.toml, stopped (or killed while readings stream in) once the memory
    was in use, and started again: every score published, replays included, is the
    uninterrupted run's (the memory's codes are among what windows rebuild from)."""
    from streamae.pipeline import Pipeline
    from streamae.profile import layered_settings

    exactly_once = "exactly-once" in restart
    settings = (
        monitor_settings.replace(delivery="exactly-once", instance_id="memory-eos")
        if exactly_once
        else monitor_settings
    )
    path, profile, model = shipped_profile_model(tmp_path)
    readings = simulate(sensors=2, readings_per_sensor=2600, channels=2, seed=3).readings()
    offline = Pipeline(layered_settings(profile, env={}), artifact.load(model)).process(readings)

    def start_monitor():
        return monitor_processes(
            settings, "--config", str(path), model_dir=model, unset=profile.settings
        )

    cut = 2 * 2300  # 2300 readings per sensor: past the memory's delay of 2000 windows
    kio.produce_readings(readings[:cut])
    proc = start_monitor()
    kio.wait_consumed(settings.group_id, settings.readings_topic, alive=proc.check_alive)
    if restart == "stop":
        assert proc.stop() == 0
        kio.produce_readings(readings[cut:])
    else:  # killed while the rest streams in: mid-batch, mid-checkpoint, wherever it lands
        feed = threading.Thread(target=kio.feed_readings, args=(readings[cut:], 40, 0.05))
        feed.start()
        time.sleep(0.4)
        proc.kill()
        feed.join()
    last = start_monitor()
    kio.wait_consumed(settings.group_id, settings.readings_topic, alive=last.check_alive)
    assert last.stop() == 0
    assert "restored 2 sensor(s)" in last.log() and "not restorable" not in last.log()
    published: dict[tuple[str, int], set[float]] = {}
    records = kio.read(settings.scores_topic, committed=exactly_once)
    for record in records:
        score = decode_score(record.value)
        published.setdefault((score.sensor_id, score.ts), set()).add(score.score)
    print(f"\n{restart}: {len(records)} scores published for {len(published)} windows")
    assert published == {(s.sensor_id, s.ts): {s.score} for s in offline.scores}
