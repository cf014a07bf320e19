"""streamae: a streaming sensor anomaly monitor.

Readings → windows → scores → alerts, the same core offline (``detect``), live
(``monitor``) and in tests.
"""

from streamae.config import Secret, Settings
from streamae.exceptions import (
    ArtifactError,
    BrokerError,
    ConfigError,
    InputError,
    InvalidReading,
    KafkaAuthError,
    KafkaUnavailable,
    ModelError,
    StreamaeError,
)
from streamae.messages import Alert, DeadLetter, Reading, Score, decode_reading

__all__ = [
    "Alert",
    "ArtifactError",
    "BrokerError",
    "ConfigError",
    "DeadLetter",
    "InputError",
    "InvalidReading",
    "KafkaAuthError",
    "KafkaUnavailable",
    "ModelError",
    "Reading",
    "Score",
    "Secret",
    "Settings",
    "StreamaeError",
    "decode_reading",
]

__version__ = "0.1.0"
