"""A local Apache Kafka: one combined broker and controller (KRaft), on loopback, stopped by PID.

    kafka = LocalKafka(workdir, sasl_ssl_users={"worker": "secret"}).start()
    kafka.url              # kafka://127.0.0.1:PORT, PLAINTEXT
    kafka.sasl_ssl         # bootstrap address, CA file, SCRAM-SHA-512 users (when asked for)
    kafka.stop(); kafka.start()   # the same data directory and ports: a broker outage
    kafka.stop()

`start()` fetches the pinned release's jars on first use (`localbrokers.kafkajars`),
formats the KRaft storage once (with the SCRAM users), writes `server.properties` and a
Log4j 2 configuration, starts the JVM with its output in `server.log`, and returns once
the broker answers a metadata request naming itself. Ports are free loopback ports
chosen once per instance, so a restart comes back where clients expect it.

The configuration is Kafka's defaults, except what one node needs (replication factor
1 for the internal topics), `group.initial.rebalance.delay.ms=0` (a lone consumer group
member joins at once instead of after 3 s), `auto.create.topics.enable=false` (like
most managed Kafkas: every topic is created on purpose) and `log.cleaner.backoff.ms=1000`
(the log cleaner looks for compactable logs every second instead of every 15 s, for the
compaction test). `extra_config` adds or overrides any broker setting.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localbrokers.kafkajars import KAFKA_RELEASE, KafkaJars, kafka_jars
from localbrokers.net import accepts_connections, free_loopback_port
from localbrokers.tlsfiles import CertificateAuthority, broker_keystore, make_ca

START_TIMEOUT_S = 90.0  # JVM start, metadata log replay, broker unfenced (about 5 s on a quiet machine)
STOP_TIMEOUT_S = 60.0  # SIGTERM -> a clean (controlled) shutdown, else SIGKILL
FORMAT_TIMEOUT_S = 120.0
SCRAM = "SCRAM-SHA-512"
JVM_OPTIONS = ["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]

BROKER_DEFAULTS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "10",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    "log.cleaner.backoff.ms": "1000",
}

LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = INFO
"""


class KafkaFailed(RuntimeError):
    """The broker did not start, or stopped on its own; the message ends with its log."""


@dataclass(frozen=True)
class SaslSsl:
    """The SASL_SSL listener: SCRAM-SHA-512 over TLS, with a certificate signed by `ca`."""

    bootstrap: str  # 127.0.0.1:PORT
    ca: CertificateAuthority
    users: Mapping[str, str] = field(repr=False)  # SCRAM user -> password
    mechanism: str = SCRAM

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def cafile(self) -> Path:
        return self.ca.pem

    @property
    def user(self) -> str:
        """The first SCRAM user (the suite makes one)."""
        return next(iter(self.users))

    def env(self, user: str, password: str | None = None, cafile: Path | None = None) -> dict[str, str]:
        """The worker's and the commands' FUNNEL_* variables to connect as `user` (a wrong password or
        CA file may be given instead, for a test that must be refused)."""
        return {
            "FUNNEL_BROKER_URL": self.url,
            "FUNNEL_SECURITY_PROTOCOL": "SASL_SSL",
            "FUNNEL_SASL_MECHANISM": self.mechanism,
            "FUNNEL_SASL_USERNAME": user,
            "FUNNEL_SASL_PASSWORD": self.users[user] if password is None else password,
            "FUNNEL_SSL_CAFILE": str(cafile or self.cafile),
        }


@dataclass
class LocalKafka:
    workdir: Path
    sasl_ssl_users: Mapping[str, str] | None = None  # None: no SASL_SSL listener
    extra_config: Mapping[str, str] = field(default_factory=dict)
    release: str = KAFKA_RELEASE
    jvm_options: list[str] = field(default_factory=lambda: list(JVM_OPTIONS))

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.port = free_loopback_port()
        self.controller_port = free_loopback_port()
        self.sasl_ssl_port = free_loopback_port() if self.sasl_ssl_users is not None else None
        self.data = self.workdir / "data"
        self.log = self.workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.sasl_ssl: SaslSsl | None = None
        self._jars: KafkaJars | None = None
        self._keystore: tuple[Path, str] | None = None

    # -- addresses ------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def description(self) -> str:
        return f"Apache Kafka {self.release} (KRaft, one node) on {self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else "(no log)"

    # -- life cycle -----------------------------------------------------------------

    def start(self, timeout_s: float = START_TIMEOUT_S) -> LocalKafka:
        """Start the broker (formatting its storage the first time) and wait until it answers."""
        if self.running():
            return self
        if self._jars is None:
            self._jars = kafka_jars(self.release)
        self.workdir.mkdir(parents=True, exist_ok=True)
        properties = self.workdir / "server.properties"
        properties.write_text("".join(f"{k}={v}\n" for k, v in self._config().items()))
        (self.workdir / "log4j2.properties").write_text(LOG4J2)
        if not (self.data / "meta.properties").is_file():
            self._format(properties)
        command = [str(self._jars.java), *self.jvm_options]
        command += [f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}"]
        command += ["-cp", self._jars.classpath, "kafka.Kafka", str(properties)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        with self.log.open("ab") as out:
            out.write(f"---- starting {self.description}, data {self.data} ----\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.workdir, start_new_session=True
            )
        self._wait_ready(timeout_s)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Signal the broker by its PID and wait for it (SIGKILL if it outlives the timeout); its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout_s)
        return process.returncode

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- set-up ---------------------------------------------------------------------

    def _config(self) -> dict[str, str]:
        listeners = {"PLAINTEXT": self.port, "CONTROLLER": self.controller_port}
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
        if self.sasl_ssl_port is not None:
            listeners["SASL_SSL"] = self.sasl_ssl_port
            protocols["SASL_SSL"] = "SASL_SSL"
        config = dict(BROKER_DEFAULTS)
        config.update(
            {
                "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
                "listeners": ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items()),
                "advertised.listeners": ",".join(
                    f"{name}://127.0.0.1:{port}" for name, port in listeners.items() if name != "CONTROLLER"
                ),
                "listener.security.protocol.map": ",".join(f"{k}:{v}" for k, v in protocols.items()),
                "log.dirs": str(self.data),
            }
        )
        if self.sasl_ssl_port is not None:
            config.update(self._sasl_ssl_config())
        config.update(self.extra_config)
        return config

    def _sasl_ssl_config(self) -> dict[str, str]:
        if self._keystore is None:
            tls = self.workdir / "tls"
            ca = make_ca(tls)
            keystore = broker_keystore(tls, ca)
            self._keystore = (keystore.path, keystore.password)
            assert self.sasl_ssl_users is not None
            self.sasl_ssl = SaslSsl(f"127.0.0.1:{self.sasl_ssl_port}", ca, dict(self.sasl_ssl_users))
        path, password = self._keystore
        prefix = "listener.name.sasl_ssl."
        return {
            "sasl.enabled.mechanisms": SCRAM,
            f"{prefix}{SCRAM.lower()}.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
            "required;",
            f"{prefix}ssl.keystore.type": "PKCS12",
            f"{prefix}ssl.keystore.location": str(path),
            f"{prefix}ssl.keystore.password": password,
            f"{prefix}ssl.key.password": password,
        }

    def _format(self, properties: Path) -> None:
        """Format the KRaft storage: a new cluster id, and the SCRAM users' credentials."""
        assert self._jars is not None
        cluster = new_cluster_id()
        command = [str(self._jars.java), "-cp", self._jars.classpath]
        command += [f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}"]
        command += ["kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(properties)]
        for user, password in (self.sasl_ssl_users or {}).items():
            command += ["--add-scram", f"{SCRAM}=[name={user},password={password}]"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise KafkaFailed(
                f"formatting {self.data} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
            )

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise KafkaFailed(
                    f"{self.description} exited with {self.process.returncode} at start; {self.log}:\n{self.log_tail()}"
                )
            if accepts_connections(self.port) and self._answers():
                return
            time.sleep(0.2)
        self.stop(signal.SIGKILL)
        raise KafkaFailed(f"{self.description} did not answer within {timeout_s:g} s; {self.log}:\n{self.log_tail()}")

    def _answers(self) -> bool:
        """Whether the broker answers a metadata request that lists itself (it is then unfenced)."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=2000, request_timeout_ms=2000
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            brokers = admin.describe_cluster().get("brokers") or []
        except (KafkaError, OSError, ValueError):
            return False
        finally:
            admin.close()
        return any(broker.get("broker_id") == 1 and not broker.get("is_fenced") for broker in brokers)


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, never starting with "-" (the
    storage tool would read "-t -Xy..." as an option and refuse; Kafka's own ids avoid it so)."""
    while True:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster.startswith("-"):
            return cluster


def random_password() -> str:
    return secrets.token_hex(16)
