"""A single-node Apache Kafka broker (KRaft) on this machine, run by the project itself.

The jars come from Maven Central once (``mvn dependency:copy-dependencies`` with
the shipped ``kafka-pom.xml``) and are cached under ``~/.cache/streamae``. A data
directory holds everything of one broker: ``server.properties``, the storage it
formats once (``logs/``), ``kafka.log``, ``kafka.pid`` and ``broker.json`` (its
ports). Starting again on the same directory reuses the data and the ports.

>>> with LocalBroker("/tmp/kafka-demo", port=19092) as broker:  # doctest: +SKIP
...     print(broker.bootstrap, broker.version)
127.0.0.1:19092 4.1.1
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import TracebackType

from kafka.admin import UserScramCredentialUpsertion

from streamae.config import Secret, Settings
from streamae.exceptions import BrokerError, KafkaUnavailable
from streamae.kafka.clients import make_admin, wait_until_reachable

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
HOST = "127.0.0.1"
DEFAULT_PORT = 9092
SCRAM_MECHANISM = "SCRAM-SHA-512"
_SCRAM_ITERATIONS = 8192
_MAIN_CLASS = "kafka.Kafka"
_VERSION_LINE = re.compile(r"Kafka version: (\S+)")


def default_data_dir() -> Path:
    """Where ``streamae broker`` keeps its broker when no ``--data-dir`` is given."""
    return Path.home() / ".cache" / "streamae" / "broker"


def kafka_cache_dir(settings: Settings | None = None) -> Path:
    """The folder holding the Kafka jars (setting ``kafka_cache`` / STREAMAE_KAFKA_CACHE)."""
    configured = (settings or Settings.load()).kafka_cache
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "streamae" / f"kafka-{KAFKA_VERSION}"


def resolve_kafka(cache_dir: Path) -> Path:
    """Return the folder of Kafka jars, downloading them with Maven on first use."""
    pom = resources.files("streamae.kafka").joinpath("kafka-pom.xml").read_bytes()
    marker = cache_dir / "resolved"
    libs = cache_dir / "libs"
    stamp = hashlib.sha256(pom).hexdigest()
    if _read(marker) == stamp and libs.is_dir():
        return libs
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".lock"):
        if _read(marker) == stamp and libs.is_dir():  # another process resolved meanwhile
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                f"Maven (mvn) is needed once to download Apache Kafka {KAFKA_VERSION} into "
                f"{cache_dir}: install it (e.g. `apt-get install maven`) and retry"
            )
        log.info(
            "downloading Apache Kafka %s with Maven into %s (first run only)", KAFKA_VERSION, libs
        )
        (cache_dir / "pom.xml").write_bytes(pom)
        staging = cache_dir / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        command = [
            mvn,
            "-B",
            "-q",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        try:
            done = subprocess.run(
                command, cwd=cache_dir, capture_output=True, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                "Maven did not finish downloading Kafka within 15 minutes: check the network"
            ) from exc
        if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            tail = _tail_text(done.stdout + done.stderr, 15)
            raise BrokerError(
                f"Maven could not download Apache Kafka {KAFKA_VERSION} "
                f"(exit {done.returncode}; pom {cache_dir / 'pom.xml'}):\n{tail}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        marker.write_text(stamp)
    return libs


class LocalBroker:
    """One local Kafka broker+controller, its state kept in ``data_dir``.

    Ports not given are taken from the previous run on the same ``data_dir``
    (``port`` defaults to 9092, the controller port to a free one). With
    ``sasl_port`` an extra SASL_PLAINTEXT listener accepts ``sasl_user`` via
    SCRAM-SHA-512; the password is never written in clear or logged.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        sasl_port: int | None = None,
        sasl_user: str = "",
        sasl_password: Secret | str = "",
        kafka_cache: Path | str | None = None,
        heap: str = "512m",
        start_timeout_s: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir or default_data_dir()).expanduser().resolve()
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise BrokerError(
                f"{self.data_dir} is a file, not a folder; give --data-dir the broker's folder"
            )
        recorded = self.recorded_ports()
        self.port = port or recorded.get("port") or DEFAULT_PORT
        self.controller_port = controller_port or recorded.get("controller_port")
        self.sasl_port = sasl_port
        self.sasl_user = sasl_user
        self._sasl_password = (
            sasl_password if isinstance(sasl_password, Secret) else Secret(sasl_password)
        )
        if sasl_port and not (sasl_user and self._sasl_password):
            raise BrokerError("a SASL listener needs both a user name and a password")
        self.kafka_cache = Path(kafka_cache) if kafka_cache else kafka_cache_dir()
        self.heap = heap
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    # -- where things are --------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        return f"{HOST}:{self.sasl_port}" if self.sasl_port else None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def version(self) -> str | None:
        """The Kafka version the broker logged at its last start, if any."""
        found = _VERSION_LINE.findall(_read(self.log_file))
        return found[-1] if found else None

    @property
    def pid(self) -> int | None:
        """The pid of this data dir's running broker, or None."""
        text = _read(self._pid_file).strip()
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if self._is_ours(pid) else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def recorded_ports(self) -> dict[str, int]:
        """The ports of the last start on this data dir (port, controller_port, sasl_port)."""
        try:
            return json.loads(_read(self.data_dir / "broker.json") or "{}")
        except ValueError:
            return {}

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> LocalBroker:
        """Start the broker and return once clients can fetch metadata from it."""
        if self.running:
            raise BrokerError(
                f"a broker is already running from {self.data_dir} (pid {self.pid}) at "
                f"{HOST}:{self.recorded_ports().get('port', self.port)}; stop it with "
                f"`streamae broker stop --data-dir {self.data_dir}`"
            )
        java = shutil.which("java")
        if java is None:
            raise BrokerError(
                "java not found: install a Java 17+ runtime "
                "(e.g. `apt-get install openjdk-17-jre-headless`)"
            )
        self.controller_port = self.controller_port or free_port(avoid={self.port, self.sasl_port})
        ports = self._ports()
        if len(set(ports.values())) < len(ports):
            raise BrokerError(
                f"the broker's ports must differ, got {ports}; choose other ones "
                "(--port, --controller-port, --sasl-port)"
            )
        for name, port in ports.items():
            if not _port_free(port):
                raise BrokerError(
                    f"{name} port {port} on {HOST} is already in use by another process "
                    "(a broker of another data dir?); choose another port "
                    "(--port, --controller-port, --sasl-port) or stop what holds it"
                )
        libs = resolve_kafka(self.kafka_cache)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        formatted_before = (self.data_dir / "logs" / "meta.properties").exists()
        if not formatted_before:
            self._format(java, libs)
        process = self._launch(java, libs)
        try:
            self._wait_until_ready(process)
            if formatted_before and self.sasl_port:
                self._upsert_sasl_user()
        except BaseException:
            self._kill_launched()
            raise
        log.info("Apache Kafka %s is up at %s", self.version or "?", self.bootstrap)
        return self

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop this data dir's broker; return whether one was running."""
        pid = self.pid
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        log.info("stopping the Kafka broker (pid %d)", pid)
        os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout_s):
            log.warning("broker pid %d ignored SIGTERM for %.0f s; killing it", pid, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_gone(pid, 10.0)
        self._pid_file.unlink(missing_ok=True)
        return True

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- steps -------------------------------------------------------------
    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def _config_file(self) -> Path:
        return self.data_dir / "server.properties"

    def _ports(self) -> dict[str, int]:
        ports = {"client": self.port, "controller": int(self.controller_port or 0)}
        if self.sasl_port:
            ports["SASL"] = self.sasl_port
        return ports

    def _write_config(self) -> None:
        listeners = [f"PLAINTEXT://{HOST}:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if self.sasl_port:
            listeners.append(f"SASL_PLAINTEXT://{HOST}:{self.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        config = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": ",".join([*listeners, f"CONTROLLER://{HOST}:{self.controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(protocols),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": "1",
            # One node: every internal topic has a single replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Few internal partitions: the first group join or transaction stays quick.
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.sasl_port:
            config["sasl.enabled.mechanisms"] = SCRAM_MECHANISM
            # Credentials live in the cluster metadata; the JAAS entry carries no secret.
            config["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        lines = [f"{key}={value}" for key, value in config.items()]
        self._config_file.write_text(
            "# Written by `streamae broker start`.\n" + "\n".join(lines) + "\n"
        )
        log4j = resources.files("streamae.kafka").joinpath("log4j2.properties").read_text()
        (self.data_dir / "log4j2.properties").write_text(log4j)
        recorded = {"port": self.port, "controller_port": self.controller_port}
        if self.sasl_port:
            recorded |= {"sasl_port": self.sasl_port}
        (self.data_dir / "broker.json").write_text(json.dumps(recorded) + "\n")

    def _format(self, java: str, libs: Path) -> None:
        log.info("formatting broker storage in %s", self.data_dir / "logs")
        command = [java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format"]
        command += ["-t", _cluster_id(), "-c", str(self._config_file)]
        if self.sasl_port:
            command += ["--add-scram", self._scram_credential()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise BrokerError(
                f"Kafka's StorageTool could not format {self.data_dir / 'logs'} "
                f"(exit {done.returncode}):\n{_tail_text(done.stdout + done.stderr, 15)}"
            )

    def _scram_credential(self) -> str:
        """The user's SCRAM entry for StorageTool, salted here so no clear password is passed."""
        salt = os.urandom(24)
        salted = hashlib.pbkdf2_hmac(
            "sha512", self._sasl_password.get().encode(), salt, _SCRAM_ITERATIONS
        )
        b64 = base64.b64encode
        return (
            f"{SCRAM_MECHANISM}=[name={self.sasl_user},iterations={_SCRAM_ITERATIONS},"
            f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]'
        )

    def _launch(self, java: str, libs: Path) -> subprocess.Popen[bytes]:
        if self.log_file.exists():
            self.log_file.replace(self.data_dir / "kafka.log.1")
        command = [
            java,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            _MAIN_CLASS,
            str(self._config_file),
        ]
        log.info("starting Apache Kafka on %s (log: %s)", self.bootstrap, self.log_file)
        with self.log_file.open("wb") as out:
            # A session of its own: the broker outlives this command and Ctrl-C in it.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self._pid_file.write_text(f"{self._process.pid}\n")
        return self._process

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        settings = Settings.load(bootstrap_servers=self.bootstrap, security_protocol="PLAINTEXT")
        deadline = time.monotonic() + self.start_timeout_s
        log.info("waiting up to %.0f s for the broker to answer", self.start_timeout_s)
        while True:
            if process.poll() is not None:
                raise BrokerError(
                    f"the Kafka broker exited during startup (exit {process.returncode}); "
                    f"last lines of {self.log_file}:\n{_tail_text(_read(self.log_file), 20)}"
                )
            if _port_open(self.port):
                try:
                    wait_until_reachable(settings, timeout_s=2.0)
                    return
                except KafkaUnavailable:
                    pass
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the Kafka broker did not answer on {self.bootstrap} within "
                    f"{self.start_timeout_s:.0f} s; last lines of {self.log_file}:\n"
                    f"{_tail_text(_read(self.log_file), 20)}"
                )
            time.sleep(0.5)

    def _upsert_sasl_user(self) -> None:
        """Add or update the SASL user on a broker formatted by an earlier start."""
        upsert = UserScramCredentialUpsertion(
            self.sasl_user, SCRAM_MECHANISM, self._sasl_password.get(), _SCRAM_ITERATIONS
        )
        admin = make_admin(
            Settings.load(bootstrap_servers=self.bootstrap, security_protocol="PLAINTEXT")
        )
        try:
            errors = admin.alter_user_scram_credentials([upsert])
        finally:
            admin.close()
        if errors.get(self.sasl_user):
            raise BrokerError(
                f"could not set SASL user {self.sasl_user!r}: {errors[self.sasl_user]}"
            )

    def _kill_launched(self) -> None:
        """Tear down a broker that this object launched but that failed to come up."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._pid_file.unlink(missing_ok=True)

    def _is_ours(self, pid: int) -> bool:
        """Whether ``pid`` is a live kafka.Kafka JVM running this data dir's config."""
        if self._process is not None and self._process.pid == pid:
            self._process.poll()  # reap it, so an exited broker is not a zombie "alive"
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        args = [part.decode(errors="replace") for part in cmdline]
        return state != "Z" and _MAIN_CLASS in args and str(self._config_file) in args

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._is_ours(pid):
                return True
            time.sleep(0.2)
        return not self._is_ours(pid)


def _cluster_id() -> str:
    """A random Kafka cluster id, as ``StorageTool random-uuid`` makes (without a JVM).

    Kafka's Uuid is 16 random bytes in unpadded URL-safe base64; like Kafka, skip
    ids starting with "-", which a command line would take for an option.
    """
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # Like the JVM's server sockets, so a port left in TIME_WAIT still counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1.0):
        return True
    return False


def free_port(avoid: set[int | None] = frozenset()) -> int:
    """A port nothing listens on now, other than those in ``avoid`` (not bound yet)."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail_text(text: str, lines: int) -> str:
    return "\n".join("  " + line for line in text.strip().splitlines()[-lines:])
