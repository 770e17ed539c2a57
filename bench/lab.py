"""What every case shares: sizes, the broker, the simulated input, and starting workers.

Every case reads the same input: touchpoints from the project's simulator (all four
presets, 30 days), keyed by contact_id, over the same number of partitions.
"""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.procs import BenchError, Broker, Proc, Procs, python_command
from localbrokers.net import free_loopback_port
from processor.config.definitions import PRESETS, load_funnels
from processor.tools.replay import run_replay
from processor.worker.outbox import default_partition

HERE = Path(__file__).resolve().parent
STALL_FUNNEL = HERE / "funnels" / "stall-probe.json"
CLI_TIMEOUT_S = 120.0
SIMULATED_DAYS = 30
FAUST_FETCH_WAIT_MS = 1500  # faust-streaming 0.15 sets fetch_max_wait_ms=1500 on its aiokafka consumer
TANSU_FETCH_WAIT_MS = 50


@dataclass(frozen=True)
class Sizes:
    touchpoints: int = 30_000  # the input of cases 1-3 and 7 (and the source of 4-6)
    partitions: int = 4
    live_seconds: float = 20.0  # paced traffic in cases 4 and 5
    recovery_contacts: int = 1_000_000
    replay_rounds: int = 3
    idle_after: str | None = None  # FUNNEL_IDLE_AFTER for the live run; None: the worker's default (1 s)
    stall_timeout_s: float = 120.0  # a case fails when its outputs stop coming for this long


FULL = Sizes()
SMOKE = Sizes(touchpoints=600, live_seconds=3.0, recovery_contacts=3_000, replay_rounds=1, idle_after="1s")


@dataclass
class Lab:
    broker: Broker
    procs: Procs
    work: Path
    sizes: Sizes
    lines: list[bytes]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def prefix(self) -> str:
        """Every topic and app id of this run starts with it (removed at the end on a real Kafka)."""
        return f"bench-{self.run_id}-"

    def tag(self, case: str) -> str:
        """A fresh name for one case's topics and app id."""
        return f"{self.prefix}{case}-{uuid.uuid4().hex[:4]}"

    @property
    def session_timeout_s(self) -> float:
        """Consumer group session timeout for every consumer the harness starts: Tansu holds a join
        for half of it, so short there; Kafka refuses less than 6 s by default."""
        return 2.0 if self.broker.is_tansu else 10.0

    # -- the worker through its command line --------------------------------------

    def worker_env(self, case: str, **overrides: object) -> dict[str, str]:
        """A fresh topic set and app id for one worker run, as FUNNEL_* variables (others inherited)."""
        tag = self.tag(case)
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FUNNEL_")}
        env.update(
            {
                "FUNNEL_BROKER_URL": self.broker.url,
                "FUNNEL_PARTITIONS": str(self.sizes.partitions),
                "FUNNEL_APP_ID": tag,
                "FUNNEL_TOPIC_TOUCHPOINTS": f"{tag}-touchpoints",
                "FUNNEL_TOPIC_TRANSITIONS": f"{tag}-transitions",
                "FUNNEL_TOPIC_DROPOFFS": f"{tag}-dropoffs",
                "FUNNEL_TOPIC_DEADLETTER": f"{tag}-deadletter",
                "FUNNEL_TOPIC_TICKS": f"{tag}-ticks",
                "FUNNEL_DATA_DIR": str(self.work / tag),
                "FUNNEL_WEB_PORT": str(free_loopback_port()),
                "FUNNEL_SESSION_TIMEOUT": f"{self.session_timeout_s:g}s",
            }
        )
        if self.broker.is_tansu:  # Tansu's ListOffsets(latest) is short: see processor/worker/patches/endoffsets.py
            env["FUNNEL_END_OFFSETS_FROM_FETCH"] = "true"
        env["FUNNEL_FETCH_MAX_WAIT"] = f"{self.fetch_wait_ms / 1000:g}s"
        env.update({f"FUNNEL_{name.upper()}": str(value) for name, value in overrides.items()})
        return env

    @property
    def fetch_wait_ms(self) -> int:
        """The workers' longest fetch wait (FUNNEL_FETCH_MAX_WAIT). Kafka answers a fetch as
        soon as a record arrives, so there Faust's own 1.5 s only bounds idle polls. Tansu
        holds a fetch for about half its maximum even when records are waiting, which
        would add ~750 ms to every latency: on Tansu the workers wait 50 ms at most."""
        return TANSU_FETCH_WAIT_MS if self.broker.is_tansu else FAUST_FETCH_WAIT_MS

    def create_worker_topics(self, env: dict[str, str]) -> None:
        self.cli(["topics", "create"], env)

    def cli(self, args: list[str], env: dict[str, str]) -> str:
        done = subprocess.run(
            python_command("-m", "processor", *args), env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
        )
        if done.returncode != 0:
            raise BenchError(f"funnel-processor {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def start_worker(self, name: str, env: dict[str, str]) -> Proc:
        return self.procs.start(name, python_command("-m", "processor", "worker"), env)

    @staticmethod
    def outputs(env: dict[str, str]) -> list[str]:
        return [env["FUNNEL_TOPIC_TRANSITIONS"], env["FUNNEL_TOPIC_DROPOFFS"]]


# -- the input ----------------------------------------------------------------------


def simulate(path: Path, touchpoints: int, seed: int = 1) -> list[bytes]:
    """`funnel-processor simulate` for all four presets: the input of every case."""
    funnels = [arg for name in PRESETS for arg in ("--funnel", name)]
    args = ["simulate", *funnels, "--touchpoints", str(touchpoints), "--seed", str(seed)]
    args += ["--days", str(SIMULATED_DAYS), "--output", str(path)]
    done = subprocess.run(python_command("-m", "processor", *args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"simulate failed: {done.stderr}")
    return path.read_bytes().splitlines()


def expected_outputs(lines: Sequence[bytes], partitions: int, funnels: Sequence[str] = PRESETS) -> int:
    """How many outputs the worker emits for these lines: the file replay of each partition on its own
    (each input partition has its own clock), as the integration tests' oracle does."""
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for line in lines:
        by_partition[default_partition(str(orjson.loads(line)["contact_id"]).encode(), partitions)].append(line)
    loaded = load_funnels(funnels)
    total = 0
    for part in by_partition.values():
        stats = run_replay(part, "bench", loaded, io.BytesIO(), io.BytesIO())
        total += stats.outputs
    return total
