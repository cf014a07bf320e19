"""The real page in real headless Chromium, fed by real Kafka through ``streamae dashboard``.

Scores and alerts go into the session broker; the dashboard runs as a user
would start it; Chromium loads the page, we wait for the alert's sensor in the
sensor view and the alert in the alert feed, and keep a screenshot in
``test-artifacts/dashboard.png``.
"""

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamae.cli.dashboard import settings_env
from streamae.config import Settings
from streamae.kafka.clients import ensure_topics, make_producer
from streamae.messages import Alert, Score, encode

pytestmark = [pytest.mark.browser, pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SENSORS = ("pump-1", "pump-2", "fan-3", "compressor-4")
CHANNELS = ("pressure", "temperature", "vibration")
HOT_SENSOR = "pump-2"
HOT_ALERT = "pump-2-alert"
MODEL = "lstm-ae-3f9c2a"


HISTORY_S = 300
HOT_FROM = HISTORY_S - 40  # pump-2 runs hot from here on: its alert stays open
FAN_HOT = range(170, 185)  # fan-3's short anomaly: an alert that opened and closed


def demo_score(sensor: str, i: int, ts: int) -> Score:
    """Second ``i`` of a sensor's made-up life: calm noise, or a hot stretch."""
    k = SENSORS.index(sensor)
    hot = (sensor == HOT_SENSOR and i >= HOT_FROM) or (sensor == "fan-3" and i in FAN_HOT)
    value = 0.35 + 0.025 * k + math.sin(i / 9 + k) * 0.05 + math.sin(i * 1.7 + k * 3) * 0.03
    if hot:
        value = 1.6 + 0.5 * abs(math.sin(i / 3))
    threshold = 1.0 + 0.04 * math.sin(i / 50 + k)
    values = {
        "pressure": 2.0 + 0.1 * math.sin(i / 7 + k) + (0.8 if hot else 0.0),
        "temperature": 60 + 5 * k + 1.5 * math.sin(i / 30) + (6.0 if hot else 0.0),
        "vibration": 0.2 + 0.05 * math.sin(i * 1.3 + k),
    }
    errors = {c: value * w for c, w in zip(CHANNELS, (0.6, 0.3, 0.1), strict=True)}
    return Score(sensor, ts, values, value, threshold, value > threshold, errors, MODEL)


def demo_history(start_ms: int) -> tuple[list[Score], list[Alert]]:
    """Five minutes of one score a second per sensor, and the alerts they raised."""
    scores = [
        demo_score(sensor, i, start_ms + i * 1000) for i in range(HISTORY_S) for sensor in SENSORS
    ]
    fan_open, fan_closed = start_ms + FAN_HOT.start * 1000, start_ms + FAN_HOT.stop * 1000
    hot_open = start_ms + (HOT_FROM + 2) * 1000
    alerts = [
        Alert("fan-3-alert", "fan-3", "open", fan_open, None, 2.1, 1.0, ["temperature"], MODEL),
        Alert(
            "fan-3-alert", "fan-3", "closed", fan_open, fan_closed, 2.1, 1.0, ["temperature"], MODEL
        ),
        Alert(
            HOT_ALERT,
            HOT_SENSOR,
            "open",
            hot_open,
            None,
            2.1,
            1.0,
            ["pressure", "temperature"],
            MODEL,
        ),
    ]
    return scores, alerts


def send(producer, settings: Settings, messages) -> None:
    for message in messages:
        topic = settings.scores_topic if isinstance(message, Score) else settings.alerts_topic
        producer.send(topic, key=message.sensor_id.encode(), value=encode(message))
    producer.flush(30)


@pytest.fixture
def live_scores(kafka_settings: Settings) -> Iterator[Callable[[list[Alert]], None]]:
    """Five minutes of history, then one score a second per sensor until the test ends,
    like a running monitor; the test may publish more alerts through the returned function."""
    settings = kafka_settings
    ensure_topics(settings, {settings.scores_topic: 2, settings.alerts_topic: 1})
    start_ms = int(time.time() * 1000) - HISTORY_S * 1000
    producer = make_producer(settings)
    scores, alerts = demo_history(start_ms)
    send(producer, settings, [*scores, *alerts])
    stop = threading.Event()
    lock = threading.Lock()

    def keep_scoring() -> None:
        i = HISTORY_S
        while not stop.wait(1.0):
            with lock:
                send(
                    producer, settings, [demo_score(s, i, int(time.time() * 1000)) for s in SENSORS]
                )
            i += 1

    def publish(more: list[Alert]) -> None:
        with lock:
            send(producer, settings, more)

    thread = threading.Thread(target=keep_scoring, daemon=True)
    thread.start()
    try:
        yield publish
    finally:
        stop.set()
        thread.join(10)
        producer.close()


def ensure_chromium() -> None:
    """Install Debian's chromium, chromedriver and emoji font if missing, or skip saying why."""
    setup = ROOT / "scripts" / "setup-browser.sh"
    done = subprocess.run(["bash", str(setup)], capture_output=True, text=True, timeout=900)
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"headless Chromium is not installed and {setup.name} could not install it: "
            f"{(done.stderr or done.stdout).strip()[-500:]}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dashboard(kafka_settings: Settings, tmp_path: Path) -> Iterator[str]:
    """``streamae dashboard`` on a free port against the test's topics; stopped afterwards."""
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamae", "dashboard", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **settings_env(kafka_settings)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one group: streamlit and all it starts stop together
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the dashboard did not start:\n{log.read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print(log.read_text()[-2000:])


@pytest.fixture
def browser(tmp_path: Path):
    ensure_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--window-size=1600,1500",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_page_shows_the_alerting_sensor_and_the_alert_in_chromium(live_scores, dashboard, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(dashboard)

    def page_text(driver) -> str:
        return driver.find_element(By.TAG_NAME, "body").text

    wait = WebDriverWait(browser, 60, poll_frequency=0.5)
    # The sensor view picks the alerting sensor by itself and charts it.
    wait.until(lambda d: f"{HOT_SENSOR} · reconstruction error" in page_text(d))
    chart = (
        f'[aria-label="Reconstruction error of {HOT_SENSOR} with its threshold and alert periods"]'
    )
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, chart))
    assert "Top channels: pressure, temperature" in page_text(browser)
    # The alert feed lists both alerts (its table is a canvas grid; read its cells).
    wait.until(lambda d: HOT_ALERT in d.execute_script(GRID_TEXT))
    assert "fan-3-alert" in browser.execute_script(GRID_TEXT)
    assert "unreachable" not in page_text(browser)
    # Nothing has consumed the readings topic: the lag tiles say so instead of a number.
    wait.until(lambda d: "no monitor group yet" in page_text(d))

    # Live: a new alert shows up without reloading the page, and the selection stays.
    opened = int(time.time() * 1000)
    live_scores(
        [
            Alert(
                "compressor-4-alert",
                "compressor-4",
                "open",
                opened,
                None,
                1.4,
                1.0,
                ["vibration"],
                MODEL,
            )
        ]
    )
    wait.until(lambda d: "compressor-4-alert" in d.execute_script(GRID_TEXT))
    assert f"{HOT_SENSOR} · reconstruction error" in page_text(browser)

    time.sleep(2)  # let the charts finish drawing for the picture
    browser.set_window_size(1600, max(1500, browser.execute_script(PAGE_HEIGHT) + 40))
    time.sleep(2)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    print(f"dashboard screenshot: {shot}")


# Streamlit's dataframes draw on a canvas; their accessible grid holds the cell text.
GRID_TEXT = """
return Array.from(document.querySelectorAll('[data-testid="stDataFrame"] [role="gridcell"], [data-testid="stDataFrame"] td'))
  .map(cell => cell.textContent).join('\\n');
"""

# Streamlit scrolls inside its main container, not the document.
PAGE_HEIGHT = """
const main = document.querySelector('[data-testid="stMain"]') || document.documentElement;
return Math.max(main.scrollHeight, document.documentElement.scrollHeight);
"""
