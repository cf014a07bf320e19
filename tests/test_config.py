import pytest

from streamae.config import Secret, Settings
from streamae.exceptions import ConfigError


def test_defaults_apply_without_env_or_arguments():
    settings = Settings.load(env={})
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.window_size == 64
    assert settings.readings_topic == "readings"


def test_environment_overrides_default():
    settings = Settings.load(env={"STREAMAE_WINDOW_SIZE": "32", "STREAMAE_ALERTS_TOPIC": "a2"})
    assert settings.window_size == 32
    assert settings.alerts_topic == "a2"


def test_argument_overrides_environment():
    env = {"STREAMAE_WINDOW_SIZE": "32", "STREAMAE_BOOTSTRAP_SERVERS": "kafka:9092"}
    settings = Settings.load(env=env, window_size=16, bootstrap_servers=None)
    assert settings.window_size == 16
    # None means "not given", so the environment still applies.
    assert settings.bootstrap_servers == "kafka:9092"


def test_settings_are_frozen():
    settings = Settings.load(env={})
    with pytest.raises(AttributeError):
        settings.window_size = 3  # type: ignore[misc]


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="STREAMAE_WINDOW_SIZE"):
        Settings.load(env={"STREAMAE_WINDOW_SIZE": "big"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAMAE_WINDOW_SIZE": "0"}, "environment variable STREAMAE_WINDOW_SIZE: setting "),
        ({"STREAMAE_STRIDE": "100"}, "environment variable STREAMAE_STRIDE: setting 'stride'"),
        ({"STREAMAE_THRESHOLD_K": "inf"}, "environment variable STREAMAE_THRESHOLD_K: setting"),
    ],
)
def test_an_out_of_range_environment_value_names_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(env=env)


def test_an_out_of_range_argument_keeps_its_message_without_a_variable():
    with pytest.raises(ConfigError) as raised:
        Settings.load(env={"STREAMAE_STRIDE": "1"}, window_size=0)
    assert str(raised.value) == "setting 'window_size' must be > 0, got 0"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("window_size", 0, "must be > 0"),
        ("threshold_policy", "magic", "choose one of"),
        ("security_protocol", "TLS", "choose one of"),
        ("threshold_quantile", 1.5, r"in \(0, 1\)"),
        ("stride", 100, "must not exceed"),
        ("threshold_k", "nan", "must be a finite number"),
        ("threshold_margin", float("inf"), "must be a finite number"),
        ("metrics_port", 70000, "must be a TCP port"),
        ("sensor_memory", -1, "must be >= 0"),
        ("sensor_memory_delay", -5, "must be >= 0"),
        ("bootstrap_servers", "localhost:abc", "'localhost:abc' is not HOST:PORT"),
        ("bootstrap_servers", "a:9092,b:70000", "'b:70000' is not HOST:PORT"),
        ("bootstrap_servers", "", "is not HOST:PORT"),
    ],
)
def test_invalid_values_are_refused(name, value, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(env={}, **{name: value})


def test_unknown_setting_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(env={}, windw_size=3)


def test_bool_parsing_from_environment():
    assert Settings.load(env={}).delivery == "at-least-once"
    settings = Settings.load(env={"STREAMAE_DELIVERY": "exactly-once"})
    assert settings.delivery == "exactly-once"


def test_secrets_never_show_in_repr_or_str():
    settings = Settings.load(env={"STREAMAE_SASL_PASSWORD": "hunter2"}, ssl_password="pw-123")
    assert "hunter2" not in repr(settings)
    assert "pw-123" not in repr(settings)
    assert "hunter2" not in str(settings.sasl_password)
    assert settings.sasl_password.get() == "hunter2"
    assert settings.ssl_password == Secret("pw-123")


def test_replace_validates_too():
    settings = Settings.load(env={})
    assert settings.replace(window_size="8").window_size == 8
    with pytest.raises(ConfigError):
        settings.replace(window_size=-1)


@pytest.mark.parametrize("servers", ["a:1,b:2", "kafka", "[::1]:9092"])
def test_well_formed_bootstrap_servers_are_accepted(servers):
    assert Settings.load(env={}, bootstrap_servers=servers).bootstrap_servers == servers
