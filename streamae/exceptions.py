"""The one exception hierarchy of streamae.

Errors from kafka-python, torch and the file system are translated where they
enter the package (``raise X(...) from exc``); every message says what went
wrong, where, and what to do about it. The CLI prints ``str(error)`` and exits
non-zero, never a traceback, for any ``StreamaeError``. ``first_few`` keeps a list of
names in a message short.

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

from collections.abc import Sequence


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


#: Names a message lists before "and N more".
SHOWN = 5


def first_few(names: Sequence[str], shown: int = SHOWN) -> str:
    """``names`` for a message: the first ``shown``, then how many more (a folder may
    hold thousands of files, and a message must stay readable)."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")
