"""The README documents what the code has: every setting, every command, every metric."""

import dataclasses
import re
from pathlib import Path

from streamae.cli import COMMANDS
from streamae.config import Secret, Settings
from streamae.monitor.metrics import MonitorMetrics

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table_with_its_default():
    defaults = Settings.load(env={})
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `[a-z_]+` \| `(STREAMAE_[A-Z_]+)` \| `([^`]*)` \|", README, re.M)
    }
    for field in dataclasses.fields(Settings):
        var = Settings.env_var(field.name)
        assert var in rows, f"{var} is missing from the README's configuration table"
        default = getattr(defaults, field.name)
        shown = ("" if isinstance(default, Secret) else str(default)) or '""'
        assert rows[var] == shown, f"{var}: README says {rows[var]!r}, the code {shown!r}"


def test_every_command_is_documented():
    for name in COMMANDS:
        assert f"streamae {name}" in README, name


def test_the_two_commands_are_shown():
    assert "./scripts/demo.sh" in README and "./scripts/test.sh" in README


def test_every_monitor_metric_is_named_in_the_readme_and_none_that_is_not():
    names = {metric.name for metric in MonitorMetrics().registry.collect()}
    assert "streamae_consumer_lag" in names
    for name in names:
        assert f"`{name}`" in README, f"metric {name} is missing from the README"
    for shown in re.findall(r"`(streamae_[a-z_]+)`", README):
        assert shown in names, f"the README names {shown}, which the monitor does not export"
