"""`streamae broker` and LocalBroker: a real JVM on its own ports and data dir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamae.config import Settings
from streamae.exceptions import BrokerError
from streamae.kafka.broker import LocalBroker, kafka_cache_dir
from streamae.kafka.clients import ensure_topics, make_admin


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _streamae(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamae", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (zombies count as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_cli_start_status_stop_then_restart_on_the_same_data(tmp_path):
    data_dir = tmp_path / "broker"
    port = _unused_port()
    where = ("--data-dir", str(data_dir))
    started = _streamae("broker", "start", "--port", str(port), *where)
    try:
        assert started.returncode == 0, started.stderr
        assert f"Apache Kafka 4.1.1 running at 127.0.0.1:{port}" in started.stdout
        pid = int((data_dir / "kafka.pid").read_text())
        assert _alive(pid)

        status = _streamae("broker", "status", *where)
        assert status.returncode == 0
        assert f"127.0.0.1:{port}" in status.stdout and f"pid {pid}" in status.stdout

        again = _streamae("broker", "start", "--port", str(port), *where)
        assert again.returncode == 2
        assert "already running" in again.stderr and "Traceback" not in again.stderr

        settings = Settings.load(env={}, bootstrap_servers=f"127.0.0.1:{port}")
        ensure_topics(settings, {"kept-across-restarts": 2})

        stopped = _streamae("broker", "stop", *where)
        assert stopped.returncode == 0, stopped.stderr
        assert not _alive(pid)
        assert not (data_dir / "kafka.pid").exists()
        assert not LocalBroker(data_dir).running

        # Starting again reuses the formatted storage and the recorded port.
        restarted = LocalBroker(data_dir).start()
        assert restarted.bootstrap == f"127.0.0.1:{port}"
        admin = make_admin(settings)
        try:
            assert "kept-across-restarts" in admin.list_topics()
        finally:
            admin.close()
    finally:
        LocalBroker(data_dir).stop()


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalBroker(tmp_path, port=port).start()
    assert not (tmp_path / "kafka.pid").exists()


def test_the_same_port_twice_is_a_clear_error(tmp_path):
    port = _unused_port()
    with pytest.raises(BrokerError, match="the broker's ports must differ"):
        LocalBroker(tmp_path, port=port, controller_port=port).start()
    assert not (tmp_path / "kafka.pid").exists()


def test_missing_java_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(BrokerError, match="java not found"):
        LocalBroker(tmp_path / "data", port=_unused_port()).start()


def test_missing_maven_with_no_cached_jars_is_a_clear_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = subprocess.run(["which", "java"], capture_output=True, text=True).stdout.strip()
    (bin_dir / "java").symlink_to(os.path.realpath(java))
    monkeypatch.setenv("PATH", str(bin_dir))
    broker = LocalBroker(
        tmp_path / "data", port=_unused_port(), kafka_cache=tmp_path / "empty-cache"
    )
    with pytest.raises(BrokerError, match=r"Maven \(mvn\) is needed"):
        broker.start()


def test_broker_dying_at_startup_shows_its_log(tmp_path):
    kafka_cache = kafka_cache_dir()  # the jars the session already uses
    # A heap too small for the JVM to even start: it exits at once.
    broker = LocalBroker(tmp_path, port=_unused_port(), kafka_cache=kafka_cache, heap="1k")
    with pytest.raises(BrokerError, match="exited during startup") as caught:
        broker.start()
    assert "heap" in str(caught.value).lower()
    assert not broker.running and not (tmp_path / "kafka.pid").exists()


def test_sasl_listener_needs_user_and_password(tmp_path):
    with pytest.raises(BrokerError, match="user name and a password"):
        LocalBroker(tmp_path, sasl_port=_unused_port(), sasl_user="alice")


def test_stop_without_a_broker_says_so(tmp_path):
    assert LocalBroker(tmp_path).stop() is False
    result = _streamae("broker", "stop", "--data-dir", str(tmp_path))
    assert result.returncode == 0 and "no Kafka broker is running" in result.stdout


def test_a_data_dir_that_is_a_file_is_a_clear_error(tmp_path):
    not_a_folder = tmp_path / "readings.csv"
    not_a_folder.write_text("ts,value\n")
    result = _streamae("broker", "stop", "--data-dir", str(not_a_folder))
    assert result.returncode == 2
    assert "is a file, not a folder" in result.stderr and "Traceback" not in result.stderr
    assert not_a_folder.read_text() == "ts,value\n"
