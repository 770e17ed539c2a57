"""Starting workers for a test and judging how they ran.

`worker_env` and `start_ready_worker` start a worker that is meant to run (through the
`worker` fixture, which stops it by its PID); `run_expecting_exit` runs one that is meant
to refuse its configuration and exit, and `assert_one_clear_message` judges the refusal;
`assert_never_restarted` judges a worker's log at its end; `wait_for_outputs` waits for it
to get going.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from processor.config.settings import Settings
from processor.kafka import clients as kafkaio

PROGRESS_TIMEOUT_S = 120.0
EXIT_WITHIN_S = 20.0  # every refusal, the unreachable broker included
SETTINGS_HEADER = "funnel-processor worker settings:"


def worker_env(broker: Any, names: Any, free_port: Callable[[], int], **overrides: Any) -> dict[str, str]:
    """RocksDB store; on Tansu the lane's workarounds apply (conftest: TANSU_WORKAROUNDS)."""
    overrides.setdefault("web_port", free_port())
    env: dict[str, str] = broker.env(names, idle_after="1d", store="rocksdb", **overrides)
    return env


def start_ready_worker(broker: Any, names: Any, worker: Callable[..., Any], free_port: Callable[[], int]) -> Any:
    """A worker on the memory store, its idle clock a day, returned once it is ready."""
    env = broker.env(names, idle_after="1d", store="memory", web_port=free_port())
    proc = worker(env)
    proc.wait_ready()
    return proc


def wait_for_outputs(settings: Settings, at_least: int) -> int:
    deadline = time.monotonic() + PROGRESS_TIMEOUT_S
    while time.monotonic() < deadline:
        seen = len(kafkaio.read_topic(settings, settings.topic_transitions, timeout_s=0.5, expect=at_least))
        if seen >= at_least:
            return seen
        time.sleep(0.5)
    pytest.fail(f"fewer than {at_least} transitions within {PROGRESS_TIMEOUT_S} s")


def assert_never_restarted(proc: Any) -> None:
    """Still the one process it was started as, and a clean exit on SIGTERM without a crash in its log."""
    assert proc.process.poll() is None, f"the worker exited with {proc.process.returncode}"
    assert proc.stop() == 0
    log = proc.log_text()
    pids = set(re.findall(r"^\[[^\]]+\] \[(\d+)\]", log, re.MULTILINE))
    assert pids == {str(proc.pid)}, f"log lines from processes {pids}, expected only {proc.pid}"
    for sign in ("Traceback", "crash", "Restarting dead"):
        found = re.search(f"^.*{sign}.*$", log, re.MULTILINE | re.IGNORECASE)
        assert found is None, f"worker log shows {sign!r}: {found and found.group(0)[:300]}\n{log[-3000:]}"


@dataclass(frozen=True)
class Refusal:
    code: int
    message: str  # stderr without the settings the worker prints first
    output: str  # stdout and stderr, whole
    seconds: float


def run_expecting_exit(env: dict[str, str]) -> Refusal:
    """Run a worker that must refuse its configuration: how it exited, within EXIT_WITHIN_S."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "processor", "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=EXIT_WITHIN_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker was still running after {EXIT_WITHIN_S} s (killed):\n{exc.stderr!r:.3000}")
    lines = [line for line in done.stderr.splitlines() if line != SETTINGS_HEADER and not line.startswith("FUNNEL_")]
    message = "\n".join(lines).strip()
    return Refusal(done.returncode, message, done.stdout + done.stderr, time.monotonic() - started)


def assert_one_clear_message(refusal: Refusal, *needles: str) -> None:
    assert "Traceback" not in refusal.output, refusal.output[-3000:]
    assert refusal.message.startswith("funnel-processor worker: "), refusal.output[-3000:]
    assert "\n\n" not in refusal.message and refusal.message.count("funnel-processor worker:") == 1, refusal.message
    for needle in needles:
        assert needle in refusal.message, f"{needle!r} not in the message:\n{refusal.message}"
