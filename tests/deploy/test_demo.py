"""./scripts/demo.sh end to end: it starts everything, the dashboard answers,
alerts reach the alerts topic, and Ctrl-C (SIGINT to its process group) leaves
nothing of it running."""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from streamae.config import Settings
from streamae.kafka.clients import make_consumer
from streamae.messages import decode_alert

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Processes still alive in session ``sid`` (zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            pids.append(int(entry.name))
    return pids


def wait_for(predicate, timeout_s: float, what: str, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(1)
    pytest.fail(f"demo: {what} within {timeout_s:.0f} s; its output:\n{log.read_text()[-3000:]}")


def dashboard_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.status == 200 and r.read().strip() == b"ok"
    except OSError:
        return False


def test_demo_runs_end_to_end_and_ctrl_c_stops_everything(tmp_path):
    kafka_port, dashboard_port = free_port(), free_port()
    demo_dir = tmp_path / "demo"
    log = tmp_path / "demo.out"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMAE_")},
        "DEMO_DIR": str(demo_dir),
        "DEMO_PORT": str(kafka_port),
        "DEMO_DASHBOARD_PORT": str(dashboard_port),
        "DEMO_DURATION": "600",
    }
    with log.open("w") as out:
        demo = subprocess.Popen(
            [str(ROOT / "scripts/demo.sh")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: dashboard_healthy(dashboard_port), 600, "no healthy dashboard", log)
        settings = Settings.load(
            env={},
            bootstrap_servers=f"127.0.0.1:{kafka_port}",
            alerts_topic="demo-simulate-alerts",
        )
        consumer = make_consumer(settings, settings.alerts_topic)
        try:

            def an_alert():
                records = consumer.poll(timeout_ms=1000)
                return [decode_alert(r.value) for rs in records.values() for r in rs]

            alerts = wait_for(an_alert, 300, "no alert on the alerts topic", log)
        finally:
            consumer.close()
        assert alerts[0].state == "open"
        assert alerts[0].sensor_id.startswith("sensor-")
        # The monitor prints each alert as it publishes it.
        first = alerts[0]
        wait_for(lambda: f"{first.sensor_id}  peak" in log.read_text(), 60, "no printed alert", log)
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        try:
            code = demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
    assert code == 130, log.read_text()[-2000:]
    time.sleep(1)
    assert session_pids(demo.pid) == [], "demo processes left running"
    broker_pid_file = demo_dir / "kafka.pid"
    assert (
        not broker_pid_file.exists()
        or not Path(f"/proc/{broker_pid_file.read_text().strip()}").exists()
    )
    assert "stopped the Kafka broker" in log.read_text()
