"""The one exception hierarchy of streamae.

Errors from kafka-python, torch and the file system are translated where they
enter the package (``raise X(...) from exc``); every message says what went
wrong, where, and what to do about it. The CLI prints ``str(error)`` and exits
non-zero, never a traceback, for any ``StreamaeError``.

::

    StreamaeError
    ├── ConfigError          invalid setting or option value
    ├── InputError           unreadable, malformed or unsuitable input file
    ├── InvalidReading       one reading failed validation (carries ``field``, ``reason``)
    ├── ModelError           training failed or an artifact is unusable
    │   └── ArtifactError    missing, tampered or mismatched model artifact
    ├── BrokerError          the local Kafka broker could not be set up or started
    └── KafkaUnavailable     a Kafka cluster could not be reached or refused us
        └── KafkaAuthError   authentication / authorisation failed
"""

from __future__ import annotations


class StreamaeError(Exception):
    """Root of every error streamae raises on purpose."""


class ConfigError(StreamaeError):
    """A setting or command-line option has an invalid value."""


class InputError(StreamaeError):
    """An input file cannot be read or does not have the expected shape."""


class InvalidReading(StreamaeError):
    """A reading message failed validation.

    ``field`` names the offending field (``"$"`` for the whole message) and
    ``reason`` says what is wrong with it; both go to the dead-letter record.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"invalid reading: {field}: {reason}")


class ModelError(StreamaeError):
    """A model could not be trained or used."""


class ArtifactError(ModelError):
    """A model artifact is missing, tampered with, or does not match the data."""


class BrokerError(StreamaeError):
    """The project's local Apache Kafka broker could not be set up or started."""


class KafkaUnavailable(StreamaeError):
    """A Kafka cluster could not be reached, or an operation on it failed."""


class KafkaAuthError(KafkaUnavailable):
    """Kafka refused our credentials or TLS settings."""
