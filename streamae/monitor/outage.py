"""Riding out a Kafka outage: wait with bounded patience, say so once, give up clearly.

kafka-python's clients reconnect by themselves, but some of their calls wait
without a bound while the broker is away (committing a transaction waits for
the coordinator forever). ``Patience.wait`` runs such a call on a helper
thread and watches it: while the broker's port refuses connections it logs
"Kafka unreachable, retrying" once, "Kafka back after N s" once it answers
again, and raises ``KafkaUnavailable`` after ``broker_give_up_s``.

>>> patience = Patience(settings)                              # doctest: +SKIP
>>> patience.wait(producer.flush, "publishing results")       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from kafka import errors as kerr

from streamae.config import Settings
from streamae.exceptions import KafkaUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How often a waiting call checks whether the broker is reachable.
PROBE_S = 2.0
#: Backoff between retries of a call that failed while the broker was away.
BACKOFF_S = (0.5, 1.0, 2.0, 5.0)


class GaveUp(KafkaUnavailable):
    """Kafka stayed away for longer than ``broker_give_up_s``: the monitor stops."""


class Patience:
    """Tracks whether Kafka is reachable; bounds how long the monitor waits for it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.down_since: float | None = None
        #: Outages ridden out so far.
        self.outages = 0

    def unreachable(self, action: str, detail: object = "") -> None:
        """Note that Kafka did not answer while ``action``; raise once it is time to give up."""
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            self.outages += 1
            why = f": {detail}" if detail else ""
            log.warning(
                "Kafka unreachable, retrying (while %s%s); giving up after %.0f s",
                action,
                why,
                self.settings.broker_give_up_s,
            )
        elif now - self.down_since > self.settings.broker_give_up_s:
            raise GaveUp(
                f"Kafka at {self.settings.bootstrap_servers} has been unreachable for "
                f"{now - self.down_since:.0f} s (while {action}); giving up after "
                f"{Settings.env_var('broker_give_up_s')}={self.settings.broker_give_up_s:g} s. "
                "Nothing was committed that was not published; a restart resumes from there"
            )

    def reachable(self) -> None:
        """Note that Kafka answered."""
        if self.down_since is not None:
            log.info("Kafka back after %.0f s", time.monotonic() - self.down_since)
            self.down_since = None

    def wait(self, call: Callable[[], T], action: str) -> T:
        """``call()``, waited for on a helper thread until it returns or it is time to give up.

        A call that is left behind when the monitor gives up keeps its daemon
        thread until the process exits; the monitor is stopping by then.
        """
        outcome: list = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome.append((True, call()))
            except BaseException as exc:  # handed to the waiting thread below
                outcome.append((False, exc))
            done.set()

        threading.Thread(target=run, name=f"kafka-wait: {action}", daemon=True).start()
        started = time.monotonic()
        while not done.wait(PROBE_S):
            if not tcp_reachable(self.settings.bootstrap_servers):
                self.unreachable(action)
            elif time.monotonic() - started > self.settings.broker_give_up_s:
                raise GaveUp(
                    f"Kafka at {self.settings.bootstrap_servers} accepts connections but did "
                    f"not finish {action} within {self.settings.broker_give_up_s:g} s "
                    f"({Settings.env_var('broker_give_up_s')})"
                )
        ok, value = outcome[0]
        if not ok:
            raise value
        self.reachable()
        return value

    def retry(self, call: Callable[[], T], action: str) -> T:
        """``wait(call)``, called again after retriable Kafka errors (for idempotent calls)."""
        attempt = 0
        while True:
            try:
                return self.wait(call, action)
            except kerr.KafkaError as exc:
                if not _retriable(exc):
                    raise
                self.unreachable(action, exc)
                time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
                attempt += 1


def _retriable(exc: kerr.KafkaError) -> bool:
    return bool(getattr(exc, "retriable", False)) or isinstance(
        exc, kerr.KafkaTimeoutError | kerr.NoBrokersAvailable | kerr.KafkaConnectionError
    )


def tcp_reachable(bootstrap_servers: str, timeout_s: float = 1.0) -> bool:
    """Whether any bootstrap address accepts a TCP connection (a stopped broker refuses)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False
