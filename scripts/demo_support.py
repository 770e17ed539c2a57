"""Processes for the live demo (scripts/demo.py): the broker, the worker and short commands.

Every process is started in its own session (so a Ctrl-C in the terminal reaches only the
demo, which then decides what to stop), remembered, and stopped by its PID: SIGTERM, then
SIGKILL if it outlives its grace time. Signals never interrupt the demo halfway through
starting a process: the handler only records them, and the demo checks at safe points.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from localbrokers.apachekafka import KafkaFailed, LocalKafka
from localbrokers.kafkajars import NoKafka
from localbrokers.net import accepts_connections, free_loopback_port
from localbrokers.tansu import NoTansu, tansu_command

BROKER_START_TIMEOUT_S = 15.0
WORKER_READY_TIMEOUT_S = 60.0
POLL_S = 0.1


class DemoError(RuntimeError):
    """Something the demo needs failed; the message says what, and where to look."""


class Stopped(Exception):
    """SIGINT or SIGTERM arrived: the demo stops everything it started."""


class Signals:
    """Records SIGINT and SIGTERM; `check()` turns the first into Stopped at a safe point."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)

    def check(self) -> None:
        if self.received:
            raise Stopped(self.received[0])

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.check()
            time.sleep(min(POLL_S, left))
        self.check()


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path | None
    grace_s: float  # SIGTERM -> exit, before SIGKILL

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        if self.log is None or not self.log.is_file():
            return "(no log)"
        tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"  | {line}" for line in tail)

    def how_it_ended(self) -> str:
        code = self.process.returncode
        return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"

    def exited(self) -> DemoError:
        where = f"; the end of {self.log}:\n{self.log_tail()}" if self.log else ""
        return DemoError(f"the {self.name} (PID {self.pid}) {self.how_it_ended()}{where}")


@dataclass
class Children:
    """The processes the demo started and has not seen finish; stop_all() stops them newest first."""

    signals: Signals
    live: list[Child] = field(default_factory=list)

    def start(
        self, name: str, command: list[str], env: dict[str, str], *, log: Path | None = None, grace_s: float = 10.0
    ) -> Child:
        if log is not None:
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
        else:
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
            )
        child = Child(name, process, log, grace_s)
        self.live.append(child)
        return child

    def finished(self, child: Child) -> None:
        """A short command that ended normally (and was waited for): nothing left to stop."""
        self.live.remove(child)

    def run(self, name: str, command: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str, str]:
        """A short command to its end: (exit code, stdout, stderr). Stopped or timed out, it is stopped too."""
        child = self.start(name, command, env)
        deadline = time.monotonic() + timeout_s
        out, err = b"", b""
        while True:
            self.signals.check()
            try:
                more_out, more_err = child.process.communicate(timeout=POLL_S)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    self.stop(child)
                    raise DemoError(f"`{' '.join(command[2:])}` did not finish within {timeout_s:g} s") from None
                continue
            out, err = more_out or b"", more_err or b""
            break
        self.finished(child)
        return child.process.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    def stop(self, child: Child) -> str:
        """SIGTERM by PID, SIGKILL after the grace time (or at once on a further Ctrl-C); what happened."""
        if child in self.live:
            self.live.remove(child)
        if not child.running():
            return f"the {child.name} (PID {child.pid}) had already stopped: it {child.how_it_ended()}"
        started, signals_before = time.monotonic(), len(self.signals.received)
        os.kill(child.pid, signal.SIGTERM)  # not reaped yet: the PID is still this child's
        how = "SIGTERM"
        while child.running():
            hurry = len(self.signals.received) > signals_before
            if hurry or time.monotonic() - started > child.grace_s:
                os.kill(child.pid, signal.SIGKILL)
                child.process.wait()
                waited = f"SIGTERM ignored for {child.grace_s:g} s"
                how = f"SIGKILL ({'a further signal arrived' if hurry else waited})"
                break
            time.sleep(0.05)
        return f"stopped the {child.name} (PID {child.pid}) with {how} in {time.monotonic() - started:.1f} s"

    def stop_all(self) -> list[tuple[Child, str]]:
        return [(child, self.stop(child)) for child in reversed(list(self.live))]


def gone(pid: int) -> bool:
    """No process with this PID exists (the demo has reaped it, so none should)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a PID reused by someone else's process: ours is gone
        return True
    return False


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_tansu(children: Children, log: Path) -> tuple[Child, str]:
    """Tansu on a free loopback port with in-memory storage, accepting connections; (child, 'host:port')."""
    port = free_loopback_port()
    try:
        command, env = tansu_command(port)
    except NoTansu as missing:
        raise DemoError(str(missing)) from None
    child = children.start("broker", command, env, log=log)
    deadline = time.monotonic() + BROKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        children.signals.check()
        if not child.running():
            raise child.exited()
        if accepts_connections(port):
            return child, f"127.0.0.1:{port}"
        time.sleep(0.05)
    raise DemoError(f"Tansu did not accept connections on 127.0.0.1:{port} within {BROKER_START_TIMEOUT_S:g} s")


def start_kafka(children: Children, workdir: Path) -> tuple[Child, LocalKafka]:
    """The local Apache Kafka (localbrokers.apachekafka) on loopback ports, answering; its process
    joins the children, so the demo stops it by PID with the others."""
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh cluster each run, like Tansu's memory
    local = LocalKafka(workdir)
    try:
        local.start()
    except (NoKafka, KafkaFailed) as exc:
        local.stop()
        raise DemoError(f"the local Apache Kafka cannot start: {exc}") from None
    assert local.process is not None
    child = Child("broker", local.process, local.log, grace_s=30.0)
    children.live.append(child)
    return child, local


def wait_ready(child: Child, signals: Signals) -> float:
    """Seconds until the worker's log says 'Worker ready'; DemoError (with the log's end) if it exits first."""
    assert child.log is not None
    started = time.monotonic()
    while time.monotonic() - started < WORKER_READY_TIMEOUT_S:
        signals.check()
        if not child.running():
            raise child.exited()
        if "Worker ready" in child.log.read_text(errors="replace"):
            return time.monotonic() - started
        time.sleep(0.2)
    raise DemoError(
        f"the worker was not ready within {WORKER_READY_TIMEOUT_S:g} s; the end of {child.log}:\n{child.log_tail()}"
    )
