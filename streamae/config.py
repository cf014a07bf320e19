"""One frozen settings object, read from the environment in one place.

Precedence for every setting: an explicit argument > the ``STREAMAE_<NAME>``
environment variable > the default below. Secrets are held in ``Secret`` so
they never show in a repr, a log line or a traceback.

>>> Settings.load(window_size=32).window_size
32
"""

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from streamae.exceptions import ConfigError

ENV_PREFIX = "STREAMAE_"
#: Largest random seed: 64 bits unsigned, what torch.manual_seed accepts (numpy's
#: default_rng takes any non-negative integer).
MAX_SEED = 2**64 - 1


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class _SettingError(ConfigError):
    """An invalid value of ``setting``: ``load`` adds where the value came from."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(message)


@dataclass(frozen=True)
class Settings:
    """Everything streamae can be configured with. See the README's table."""

    # Kafka connection
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "streamae"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: Secret = Secret("")
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_password: Secret = Secret("")
    # Local broker (`streamae broker`): where the Kafka jars are cached; "" = ~/.cache/streamae/kafka-<version>
    kafka_cache: str = ""
    # Topics
    readings_topic: str = "readings"
    scores_topic: str = "scores"
    alerts_topic: str = "alerts"
    dead_letter_topic: str = "dead-letter"
    state_topic: str = "state"
    # Partitions given to the readings, scores and state topics when streamae
    # creates them: the most monitor instances that can share the work.
    readings_partitions: int = 4
    # Monitor
    group_id: str = "streamae-monitor"
    delivery: str = "at-least-once"
    # A stable name for this monitor, unique in its group (e.g. the pod name): its
    # transactional id in exactly-once mode and, when set, its static group
    # membership, so a restart takes its partitions straight back. "" = host name.
    instance_id: str = ""
    max_batch_wait_ms: int = 100
    max_poll_records: int = 5000
    # The broker answers the monitor's fetch once it holds fetch_min_bytes of readings
    # or fetch_max_wait_ms passed: fewer, fuller batches cost the monitor and the broker
    # less CPU per reading, for at most that wait in latency when readings are sparse.
    fetch_min_bytes: int = 16384
    fetch_max_wait_ms: int = 20
    # How often (at-least-once) a checkpoint of sensor state and consumed offsets
    # starts; 0 = after every batch. It finishes once the broker acknowledged it, so
    # a crash replays about this much and that wait. Exactly-once commits one
    # transaction per batch.
    checkpoint_interval_ms: int = 1000
    metrics_port: int = 9108
    summary_interval_s: float = 5.0
    max_sensors: int = 100_000
    idle_sensor_timeout_s: float = 3600.0
    broker_give_up_s: float = 300.0
    # Windowing
    window_size: int = 64
    stride: int = 1
    reorder_tolerance_ms: int = 0
    max_gap_ms: int = 0
    # Model
    model_path: str = ""
    model_map: str = ""
    device: str = "auto"
    # Threads torch scores with in the monitor; 0 = every core this process may use.
    # Running one monitor per core with 1 thread each scales best (see README).
    torch_threads: int = 0
    # Threshold
    threshold_policy: str = "robust"
    threshold_window: int = 2000
    threshold_k: float = 8.0
    threshold_quantile: float = 0.999
    # quantile policy: threshold = margin · quantile (headroom above the highest normal scores)
    threshold_margin: float = 1.0
    # Alerts
    alert_open_after: int = 3
    alert_close_after: int = 10
    # Windows after an alert closes during which a new one must also beat a bar that
    # falls geometrically from its peak to the threshold (0: off)
    alert_rearm: int = 0
    # An open alert closes once its scores stayed at or under this part of its peak
    # for alert_close_after windows, even over the threshold (0: off; needs
    # alert_rearm > 0; 0.25 = half the peak's root-mean-square error)
    alert_fade: float = 0.0
    # Per sensor, remember the codes of up to this many of its windows judged normal
    # (at or under the bar, no alert open) for the autoencoder to rebuild from
    # (0: off; costs 4 * latent + 8 bytes per code per sensor; checkpointed in chunks)
    sensor_memory: int = 0
    # A normal window's code is usable by its sensor's windows at least this many later
    # (and at least window_size / stride, so none rebuilds from one it overlaps; 0: that
    # least), from the next end of a block of window_size / stride windows
    sensor_memory_delay: int = 0
    # Dashboard
    dashboard_address: str = "127.0.0.1"
    dashboard_port: int = 8501
    dashboard_lookback_s: float = 3600.0
    dashboard_buffer: int = 200_000

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings: ``overrides`` (None means "not given") > env > defaults."""
        env = os.environ if env is None else env
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        from_env: set[str] = set()
        for field in dataclasses.fields(cls):
            name = field.name
            given = overrides.pop(name, None)
            if given is not None:
                values[name] = _coerce(name, hints[name], given, f"argument {name}")
                continue
            var = ENV_PREFIX + name.upper()
            if var in env:
                values[name] = _coerce(name, hints[name], env[var], f"environment variable {var}")
                from_env.add(name)
        if overrides:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(overrides))}")
        try:
            return cls(**values)
        except _SettingError as exc:
            if exc.setting not in from_env:
                raise
            # Name the variable to fix, as a value that is not a number is named.
            raise ConfigError(f"environment variable {cls.env_var(exc.setting)}: {exc}") from None

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some settings changed (validated like ``load``)."""
        hints = get_type_hints(type(self))
        coerced = {k: _coerce(k, hints[k], v, f"argument {k}") for k, v in changes.items()}
        return dataclasses.replace(self, **coerced)

    @staticmethod
    def env_var(name: str) -> str:
        return ENV_PREFIX + name.upper()


def _coerce(name: str, kind: Any, raw: Any, origin: str) -> Any:
    if isinstance(raw, kind):
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if kind is Secret:
            return Secret(str(raw))
        return kind(text)
    except ValueError:
        raise ConfigError(
            f"{origin}: {text!r} is not a valid {kind.__name__} for setting {name!r}"
        ) from None


_CHOICES = {
    "security_protocol": {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"},
    "sasl_mechanism": {"", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"},
    "delivery": {"at-least-once", "exactly-once"},
    "device": {"auto", "cpu", "cuda"},
    "threshold_policy": {"robust", "quantile", "calibrated"},
}
_POSITIVE = {
    "max_batch_wait_ms",
    "max_poll_records",
    "fetch_min_bytes",
    "readings_partitions",
    "window_size",
    "stride",
    "threshold_window",
    "threshold_k",
    "threshold_margin",
    "alert_open_after",
    "alert_close_after",
    "max_sensors",
    "dashboard_buffer",
    "summary_interval_s",
    "idle_sensor_timeout_s",
    "broker_give_up_s",
}
_INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")
_NON_NEGATIVE = {
    "alert_rearm",
    "sensor_memory",
    "sensor_memory_delay",
    "checkpoint_interval_ms",
    "fetch_max_wait_ms",
    "torch_threads",
    "reorder_tolerance_ms",
    "max_gap_ms",
    "metrics_port",
    "dashboard_lookback_s",
}


def _validate(settings: Settings) -> None:
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise _SettingError(
                field.name, f"setting {field.name!r} must be a finite number, got {value!r}"
            )
    _check_bootstrap(settings.bootstrap_servers)
    for name, allowed in _CHOICES.items():
        value = getattr(settings, name)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in sorted(allowed))
            raise _SettingError(name, f"setting {name!r} is {value!r}; choose one of {choices}")
    for name in _POSITIVE:
        if getattr(settings, name) <= 0:
            raise _SettingError(
                name, f"setting {name!r} must be > 0, got {getattr(settings, name)!r}"
            )
    for name in _NON_NEGATIVE:
        if getattr(settings, name) < 0:
            raise _SettingError(
                name, f"setting {name!r} must be >= 0, got {getattr(settings, name)!r}"
            )
    if not 0.0 <= settings.alert_fade < 1.0:
        raise _SettingError(
            "alert_fade",
            f"setting 'alert_fade' must be in [0, 1) (0: off), got {settings.alert_fade!r}",
        )
    if settings.alert_fade and not settings.alert_rearm:
        raise _SettingError(
            "alert_fade",
            f"setting 'alert_fade' ({settings.alert_fade:g}) needs 'alert_rearm' > 0: without "
            "it the level an alert faded to re-opens it at once",
        )
    if not 0.0 < settings.threshold_quantile < 1.0:
        raise _SettingError(
            "threshold_quantile",
            f"setting 'threshold_quantile' must be in (0, 1), got {settings.threshold_quantile!r}",
        )
    if not 0 < settings.dashboard_port < 65536:
        raise _SettingError(
            "dashboard_port",
            f"setting 'dashboard_port' must be a TCP port, got {settings.dashboard_port}",
        )
    if settings.metrics_port > 65535:
        raise _SettingError(
            "metrics_port",
            f"setting 'metrics_port' must be a TCP port (or 0: off), got {settings.metrics_port}",
        )
    if settings.instance_id and not _INSTANCE_ID.fullmatch(settings.instance_id):
        raise _SettingError(
            "instance_id",
            f"setting 'instance_id' is {settings.instance_id!r}; use 1 to 200 letters, digits, "
            "'.', '_' or '-' (Kafka's rule for static member ids)",
        )
    if settings.stride > settings.window_size:
        raise _SettingError(
            "stride",
            f"setting 'stride' ({settings.stride}) must not exceed 'window_size' "
            f"({settings.window_size})",
        )


def _check_bootstrap(servers: str) -> None:
    """Each of the comma-separated servers is ``host`` or ``host:port`` (Kafka's default 9092)."""
    for server in servers.split(","):
        host, colon, port = server.strip().rpartition(":")
        if not colon:
            host, port = server.strip(), "9092"
        if not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise _SettingError(
                "bootstrap_servers",
                f"setting 'bootstrap_servers' is {servers!r}: {server.strip()!r} is not "
                "HOST:PORT (e.g. 127.0.0.1:9092; several: comma-separated)",
            )
