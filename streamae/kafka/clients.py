"""kafka-python clients built from ``Settings``, with errors translated on the way in.

Every client here speaks bytes: callers encode keys and values themselves. Any
kafka-python error raised while a client is built, or inside a
``kafka_errors(...)`` block, becomes ``KafkaUnavailable`` or ``KafkaAuthError``
with a message naming the bootstrap servers and what to do.

>>> producer = make_producer(Settings.load())            # doctest: +SKIP
>>> producer.send("readings", key=b"pump-7", value=b"{}")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerr
from kafka.codec import has_lz4
from kafka.partitioner.default import DefaultPartitioner

from streamae.config import Settings
from streamae.exceptions import ConfigError, KafkaAuthError, KafkaUnavailable, StreamaeError
from streamae.kafka import fixes

log = logging.getLogger(__name__)

fixes.apply()

# How long building a client waits for the first metadata answer. kafka-python's
# own default (30 s) makes a plain typo in the bootstrap address feel like a hang.
BOOTSTRAP_TIMEOUT_MS = 10_000
# lz4 is fast and ships as a wheel; gzip is the stdlib fallback.
COMPRESSION = "lz4" if has_lz4() else "gzip"
# Producer batches per partition: big enough that a monitor's burst of scores
# goes out in a few requests (kafka-python's 16 KB default means hundreds).
BATCH_BYTES = 256 * 1024
# Keys the partitioner remembers (one per sensor) before it starts afresh.
PARTITION_CACHE_KEYS = 1_000_000

_AUTH_ERRORS = (
    kerr.AuthorizationError,
    kerr.SaslAuthenticationFailedError,
    kerr.UnsupportedSaslMechanismError,
    kerr.IllegalSaslStateError,
)
_TOPIC_ALREADY_EXISTS = kerr.TopicAlreadyExistsError.errno
_SECRET_KEYS = ("sasl_plain_password", "ssl_password")


class _RedactSecrets(logging.Filter):
    """Blank passwords in the client config that kafka-python logs at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        # logging unwraps a lone dict argument into ``record.args`` itself.
        if isinstance(record.args, Mapping):
            record.args = {
                k: "**********" if k in _SECRET_KEYS else v for k, v in record.args.items()
            }
        return True


logging.getLogger("kafka.admin.client").addFilter(_RedactSecrets())


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection settings shared by every client; optional ones only when set."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    optional = {
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_plain_username": settings.sasl_username,
        "sasl_plain_password": settings.sasl_password.get(),
        "ssl_cafile": settings.ssl_cafile,
        "ssl_certfile": settings.ssl_certfile,
        "ssl_keyfile": settings.ssl_keyfile,
        "ssl_password": settings.ssl_password.get(),
    }
    config.update({key: value for key, value in optional.items() if value})
    return config


class KeyedPartitioner(DefaultPartitioner):
    """Kafka's default partitioner (murmur2 of the key), remembering each key's partition.

    kafka-python hashes in pure Python on every send, a quarter of a send's cost;
    the same few thousand sensor ids come back all day. A change in the topic's
    partition count starts the topic's cache afresh, as the hash would then differ.
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, dict[bytes, int]]] = {}

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster) -> int:
        if serialized_key is None:
            return super().partition(topic, key, None, value, serialized_value, cluster)
        count = len(cluster.partitions_for_topic(topic) or ())
        known_count, known = self._cache.get(topic, (-1, {}))
        if known_count != count or len(known) >= PARTITION_CACHE_KEYS:
            known = {}
            self._cache[topic] = (count, known)
        partition = known.get(serialized_key)
        if partition is None:
            partition = super().partition(
                topic, key, serialized_key, value, serialized_value, cluster
            )
            known[serialized_key] = partition
        return partition


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer of raw bytes: acks from all in-sync replicas, small linger, compressed,
    large batches, key → partition remembered."""
    config = {
        **client_config(settings),
        "acks": "all",
        "linger_ms": 5,
        "batch_size": BATCH_BYTES,
        "partitioner": KeyedPartitioner(),
        "compression_type": COMPRESSION,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        **overrides,
    }
    with kafka_errors(settings, "connecting a producer"):
        return KafkaProducer(**config)


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None = None, **overrides: Any
) -> KafkaConsumer:
    """A consumer of raw bytes that commits offsets only when told to.

    Without ``group_id`` the consumer joins no group (and so commits nothing).
    """
    config = {
        **client_config(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        **overrides,
    }
    with kafka_errors(settings, "connecting a consumer"):
        return KafkaConsumer(*topics, **config)


def make_admin(settings: Settings, **overrides: Any) -> KafkaAdminClient:
    """An admin client (topics, configs, groups)."""
    config = {
        **client_config(settings),
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        **overrides,
    }
    with kafka_errors(settings, "connecting an admin client"):
        return KafkaAdminClient(**config)


def ensure_topics(settings: Settings, topics: Mapping[str, int]) -> list[str]:
    """Create the missing topics (name -> partitions); return the names created.

    The state topic (``settings.state_topic``) is created compacted, since only the
    latest checkpoint per key matters. Existing topics are left as they are, and a
    topic that another process creates at the same moment counts as existing.
    """
    admin = make_admin(settings)
    try:
        with kafka_errors(settings, f"creating topics {', '.join(topics)}"):
            existing = set(admin.list_topics())
            missing = {name: parts for name, parts in topics.items() if name not in existing}
            if not missing:
                return []
            request = {
                name: {
                    "num_partitions": parts,
                    "replication_factor": -1,
                    "configs": {"cleanup.policy": "compact"}
                    if name == settings.state_topic
                    else {},
                }
                for name, parts in missing.items()
            }
            response = admin.create_topics(request, raise_errors=False)
            created = []
            for result in response["topics"]:
                code = result["error_code"]
                if code == 0:
                    created.append(result["name"])
                elif code != _TOPIC_ALREADY_EXISTS:
                    error = kerr.for_code(code)
                    detail = result.get("error_message") or error.description
                    raise error(f"topic {result['name']!r}: {detail}")
            admin.wait_for_topics(list(missing))
    finally:
        admin.close()
    log.info("created topics %s", ", ".join(created) or "(none: created concurrently)")
    return created


def position(consumer: KafkaConsumer, tp: TopicPartition) -> int:
    """The consumer's next offset on ``tp``.

    kafka-python returns None when it could not look the offset up (the broker went
    away meanwhile); that is an outage to report (inside ``kafka_errors``), not an offset.
    """
    offset = consumer.position(tp)
    if offset is None:
        raise kerr.KafkaTimeoutError(f"no offset for {tp.topic} partition {tp.partition}")
    return offset


def wait_until_reachable(settings: Settings, timeout_s: float = 30.0) -> None:
    """Return once the cluster answers a metadata request; raise after ``timeout_s``."""
    admin = make_admin(settings, bootstrap_timeout_ms=int(timeout_s * 1000))
    try:
        with kafka_errors(settings, "listing topics"):
            admin.list_topics()
    finally:
        admin.close()


@contextmanager
def kafka_errors(settings: Settings, action: str) -> Iterator[None]:
    """Translate kafka-python errors raised inside the block into streamae's.

    ``action`` says what was being done, e.g. ``"polling readings"``.
    """
    try:
        yield
    except StreamaeError:
        raise
    except _AUTH_ERRORS as exc:
        raise KafkaAuthError(_auth_message(settings, action, exc)) from exc
    except kerr.KafkaConfigurationError as exc:
        raise ConfigError(f"invalid Kafka client configuration while {action}: {exc}") from exc
    except (kerr.KafkaError, OSError) as exc:
        if isinstance(exc, kerr.BrokerResponseError) and not exc.retriable:
            # The broker answered: reachable, but it refused this request.
            raise KafkaUnavailable(
                f"Kafka at {settings.bootstrap_servers} refused the request while {action}: "
                f"{type(exc).__name__} ({exc})"
            ) from exc
        if _bootstrap_failed(exc) and _tcp_reachable(settings.bootstrap_servers):
            # Something listens there but the Kafka handshake never completed: with
            # SASL or TLS configured that is how refused credentials look from here.
            if settings.security_protocol != "PLAINTEXT":
                detail = "the connection opens but the handshake never completes"
                raise KafkaAuthError(_auth_message(settings, action, detail)) from exc
            raise KafkaUnavailable(
                f"{settings.bootstrap_servers} accepts connections but did not answer as a "
                f"Kafka broker while {action} (security_protocol PLAINTEXT): it may still be "
                f"starting, or need SASL/SSL; check {Settings.env_var('security_protocol')}"
            ) from exc
        raise KafkaUnavailable(_unavailable_message(settings, action, exc)) from exc


def _bootstrap_failed(exc: BaseException) -> bool:
    return isinstance(exc, kerr.KafkaTimeoutError) and "bootstrap" in str(exc).lower()


def _unavailable_message(settings: Settings, action: str, exc: BaseException) -> str:
    return (
        f"Kafka at {settings.bootstrap_servers} is not reachable while {action} ({exc}); "
        "start a local broker with `streamae broker start`, or check "
        f"{Settings.env_var('bootstrap_servers')}"
    )


def _auth_message(settings: Settings, action: str, detail: object) -> str:
    who = f"user {settings.sasl_username!r} " if settings.sasl_username else ""
    mechanism = settings.sasl_mechanism or "no SASL mechanism"
    return (
        f"Kafka at {settings.bootstrap_servers} refused {who}while {action} "
        f"(security_protocol {settings.security_protocol}, {mechanism}): {detail}; check "
        f"{Settings.env_var('sasl_username')}, {Settings.env_var('sasl_password')}, "
        f"{Settings.env_var('sasl_mechanism')} and the SSL settings"
    )


def _tcp_reachable(bootstrap_servers: str, timeout_s: float = 2.0) -> bool:
    """Whether any bootstrap address accepts a TCP connection."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False
