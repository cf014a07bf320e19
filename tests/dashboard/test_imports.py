"""The dashboard stays light: it never imports torch, even after drawing a page."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = f"""
import sys
import streamae.cli.dashboard, streamae.dashboard, streamae.dashboard.app, streamae.dashboard.charts
from streamlit.testing.v1 import AppTest
from streamae.dashboard.feed import FEED_KEY, MemoryFeed
from streamae.messages import Alert, Score

feed = MemoryFeed()
feed.add_score(Score("s", 1000, {{"a": 1.0}}, 2.0, 1.0, True, {{"a": 2.0}}, "m"))
feed.add_alert(Alert("x", "s", "open", 1000, None, 2.0, 1.0, ["a"], "m"))
app = AppTest.from_file({str(ROOT / "dashboards" / "app.py")!r}, default_timeout=30)
app.session_state[FEED_KEY] = feed
app.run()
assert not app.exception, app.exception
assert app.get("vega_lite_chart"), "the page drew no chart"
print("torch" in sys.modules)
"""


def test_dashboard_never_imports_torch():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
