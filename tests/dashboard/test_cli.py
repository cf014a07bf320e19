"""``streamae dashboard``: the command it runs, the settings it passes, and a clean stop."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streamae.cli import build_parser, main
from streamae.cli.dashboard import APP, settings_env, streamlit_command
from streamae.cli.options import settings_from
from streamae.config import Secret, Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_command_serves_the_packaged_page_on_localhost_by_default():
    command = streamlit_command(Settings.load(env={}))
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(APP)]
    assert APP.is_file()
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.port"] == "8501"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"


def test_settings_travel_to_the_page_through_the_environment():
    settings = Settings.load(
        env={},
        bootstrap_servers="k1:9093,k2:9093",
        scores_topic="s-topic",
        sasl_password=Secret("hunter2"),
        dashboard_lookback_s=60.0,
    )
    env = settings_env(settings)
    assert env["STREAMAE_SASL_PASSWORD"] == "hunter2"
    assert Settings.load(env=env) == settings


def test_the_group_whose_lag_the_page_shows_is_an_option(monkeypatch):
    monkeypatch.delenv("STREAMAE_GROUP_ID", raising=False)
    for argv, group in (
        (["dashboard", "--group", "plant-a"], "plant-a"),
        (["dashboard"], "streamae-monitor"),
    ):
        assert settings_from(build_parser(argv).parse_args(argv)).group_id == group


def test_a_busy_port_is_a_clear_error_not_a_traceback(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert "Traceback" not in err


def test_serves_the_page_and_stops_cleanly_on_ctrl_c():
    port = free_port()
    env = {**os.environ, "STREAMAE_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamae", "dashboard", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_stcore/health", timeout=2
                ) as r:
                    assert r.read() == b"ok"
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"dashboard did not come up:\n{process.stdout.read()}")
                time.sleep(0.3)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output
    assert f"serving http://127.0.0.1:{port}" in output
    assert "Traceback" not in output
