"""Case 8: one and two worker processes of one consumer group on the same input.

Contacts are independent, so processes of one group should add up, up to the cores
there are. Each run gets fresh topics and a fresh group (the app id): its N workers
(each with its own web port and data dir) are started on empty topics, and the run
waits until every one answers /health and the group has settled (each worker owns at
least one input partition, all partitions owned, the same for two looks in a row), so
no rebalance falls inside the timing. Then the input is loaded, and the drain is timed
as in case 3: from the first output record's timestamp to the last one's, over both
output topics, with the processes' CPU time summed over the same span. The two runs use
the same method, so their ratio compares like with like; row 3 (input loaded before
its one worker starts) is not part of it.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import orjson

from bench.lab import Lab, expected_outputs
from bench.procs import BenchError, Proc
from bench.streams import preload
from bench.throughput import Drain, _drain, drain_of
from localbrokers.net import free_loopback_port

SETTLE_TIMEOUT_S = 120.0
SETTLE_POLL_S = 0.5


@dataclass
class ScaleRun:
    processes: int
    drain: Drain
    owned: list[list[int]]  # input partitions per worker when the input was loaded


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return 0, b""


def settled(owned: list[list[int]], partitions: int) -> bool:
    """Every worker owns some partition, and together they own each exactly once."""
    flat = sorted(p for parts in owned for p in parts)
    return all(owned) and flat == list(range(partitions))


def _wait_settled(procs: list[Proc], ports: list[int], partitions: int) -> list[list[int]]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    previous: list[list[int]] | None = None
    owned: list[list[int]] = []
    while time.monotonic() < deadline:
        for proc in procs:
            proc.check_running()
        if all(_get(port, "/health")[0] == 200 for port in ports):
            answers = [_get(port, "/funnels/") for port in ports]
            if all(status == 200 for status, _ in answers):
                owned = [sorted(orjson.loads(body)["partitions"]) for _, body in answers]
                if settled(owned, partitions) and owned == previous:
                    return owned
                previous = owned
        time.sleep(SETTLE_POLL_S)
    within = f"{SETTLE_TIMEOUT_S:g} s"
    raise BenchError(f"{len(procs)} workers did not settle on {partitions} partitions within {within}: {owned}")


def run(lab: Lab, store: str, processes: int) -> ScaleRun:
    env = lab.worker_env(f"scale{processes}", store=store)
    lab.create_worker_topics(env)
    expected = expected_outputs(lab.lines, lab.sizes.partitions)
    procs: list[Proc] = []
    ports: list[int] = []
    try:
        for i in range(processes):
            port = free_loopback_port()
            own = dict(env, FUNNEL_WEB_PORT=str(port), FUNNEL_DATA_DIR=f"{env['FUNNEL_DATA_DIR']}-{i}")
            procs.append(lab.start_worker(f"worker-scale{processes}-{i}", own))
            ports.append(port)
        owned = _wait_settled(procs, ports, lab.sizes.partitions)
        asyncio.run(preload(lab.broker.hosts, env["FUNNEL_TOPIC_TOUCHPOINTS"], lab.lines))
        what = f"{processes} worker process(es)"
        records, cpu_s = asyncio.run(_drain(lab, procs, lab.outputs(env), expected, what))
    finally:
        codes = [lab.procs.stop(proc) for proc in procs]
    drain = drain_of(records, len(lab.lines), expected, min(p.started_wall for p in procs), cpu_s)
    drain.extra.update({"store": store, "processes": processes, "owned_partitions": owned, "exit_codes": codes})
    return ScaleRun(processes, drain, owned)
