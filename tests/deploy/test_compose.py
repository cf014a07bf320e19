"""docker-compose.yml agrees with the code: commands, settings, ports, topics, tags."""

import dataclasses
import re
import shlex
from pathlib import Path

import pytest
import yaml

from streamae.cli import build_parser
from streamae.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
STREAMAE_SERVICES = {n: s for n, s in SERVICES.items() if s.get("image", "").startswith("streamae")}
DEFAULTS = Settings.load(env={})


def streamae_invocations(service: dict) -> list[list[str]]:
    """Every `streamae ...` command line a service runs, as argv lists."""
    command = service.get("command", [])
    if service.get("entrypoint") is None:  # the image's entrypoint is `streamae`
        return [list(map(str, command))]
    script = " ".join(command) if isinstance(command, list) else command
    found = []
    for part in re.split(r"&&|\|\||;|\(|\)", script):
        words = shlex.split(part)
        if words and words[0] == "streamae":
            found.append(words[1:])
    return found


def test_compose_runs_every_streamae_service():
    assert set(STREAMAE_SERVICES) == {"trainer", "simulator", "monitor", "dashboard"}


@pytest.mark.parametrize("name", sorted(STREAMAE_SERVICES))
def test_every_service_command_parses_with_the_cli(name):
    invocations = streamae_invocations(STREAMAE_SERVICES[name])
    assert invocations, f"{name} runs no streamae command"
    for argv in invocations:
        args = build_parser(argv).parse_args(argv)  # exits (fails the test) on a bad option
        assert args.command == argv[0]


def test_environment_variables_are_settings_the_code_reads():
    fields = {Settings.env_var(f.name) for f in dataclasses.fields(Settings)}
    for name, service in STREAMAE_SERVICES.items():
        env = service.get("environment", {})
        streamae_vars = {k for k in env if k.startswith(ENV_PREFIX)}
        assert streamae_vars, f"{name} sets no STREAMAE_* variable"
        assert streamae_vars <= fields, f"{name}: unknown {streamae_vars - fields}"
        # Each value must be accepted by Settings itself.
        Settings.load(env={k: str(v) for k, v in env.items()})


def test_topic_names_and_ports_agree_with_defaults():
    env = STREAMAE_SERVICES["monitor"]["environment"]
    for topic in ("readings", "scores", "alerts", "dead_letter", "state"):
        assert env[Settings.env_var(f"{topic}_topic")] == getattr(DEFAULTS, f"{topic}_topic")
    init_script = " ".join(SERVICES["topics"]["command"])
    for topic in ("readings", "scores", "alerts", "dead-letter", "state"):
        assert re.search(rf"(^|\s){re.escape(topic)}(:|\s)", init_script), topic
    assert (
        f"127.0.0.1:{DEFAULTS.dashboard_port}:{DEFAULTS.dashboard_port}"
        in (SERVICES["dashboard"]["ports"])
    )
    assert (
        f"127.0.0.1:{DEFAULTS.metrics_port}:{DEFAULTS.metrics_port}"
        in (SERVICES["monitor"]["ports"])
    )


def test_monitor_starts_after_the_trainer_and_reads_its_model():
    monitor = SERVICES["monitor"]
    assert monitor["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    model = monitor["command"][monitor["command"].index("--model") + 1]
    assert f"--out {model}" in " ".join(SERVICES["trainer"]["command"])


def test_image_tags_are_pinned():
    for name, service in SERVICES.items():
        image = service["image"]
        repo, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.match(r"\d", tag), f"{name}: {image} is not pinned"
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert re.search(r":\d+\.\d+\.\d+", base), base


def test_image_runs_as_non_root_with_the_streamae_entry_point():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\S+", text, re.M)
    assert 'ENTRYPOINT ["streamae"]' in text
