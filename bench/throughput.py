"""Cases 1-3: the same pre-loaded touchpoints drained by the passthrough, the Faust baseline and the worker.

Case 3r drains the same touchpoints written as Segment events (processor/tools/simshapes.py),
keyed by message id, through the worker's re-keying path (processor/worker/rekey.py): each
record is re-keyed by contact through the internal topic, then processed as in case 3.
Its source topic has one partition, so every contact's events keep their order and the
outputs are exactly case 3's; a worker process drains its partitions on one event loop,
so more source partitions would not make it faster.

What is timed, the same way for all three: the input topic is filled first; then the
process starts; the harness reads its output topics from the beginning and stops at
the expected count. The drain time is the span from the first output record's
timestamp to the last one's (CreateTime, set by the processing process's producer when
it sends the record), so process start-up and the group join are left out. The rate
is input records / drain time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import orjson

from bench.lab import Lab, expected_outputs
from bench.procs import BenchError, Proc, python_command
from bench.streams import Reader, Record, create_topics, preload, produce
from processor.funnel.eventmap import DEFAULT_MAPPING
from processor.funnel.formats import record_key
from processor.tools.simshapes import Shaper


class Watch(Protocol):
    """Something attached to a worker while it drains (a profiler)."""

    def stop(self) -> None: ...


@dataclass
class Drain:
    touchpoints: int
    outputs: int
    span_s: float
    first_output_after_s: float  # from process start: start-up, group join, first record
    cpu_s: float | None  # the process's CPU time from its first output seen to its last (None: it had exited)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.touchpoints / self.span_s

    @property
    def cpu_us(self) -> float | None:
        """CPU µs per touchpoint: unlike the rate, hardly moved by other load on the machine.
        (Slightly low: what the process spent before its first output is left out.)"""
        return None if self.cpu_s is None else self.cpu_s / self.touchpoints * 1e6

    def details(self) -> dict[str, object]:
        return {
            "touchpoints": self.touchpoints,
            "outputs": self.outputs,
            "drain_s": round(self.span_s, 3),
            "first_output_after_start_s": round(self.first_output_after_s, 2),
            "cpu_s_while_draining": None if self.cpu_s is None else round(self.cpu_s, 2),
            "cpu_us_per_touchpoint": None if self.cpu_us is None else round(self.cpu_us, 1),
            **self.extra,
        }


def drain_of(records: list[Record], touchpoints: int, outputs: int, started_wall: float, cpu_s: float | None) -> Drain:
    stamps = sorted(r.timestamp_ms for r in records)[:outputs]
    span = (stamps[-1] - stamps[0]) / 1000
    if span <= 0:
        raise BenchError(f"{outputs} outputs all carry one timestamp: too few touchpoints to time")
    return Drain(touchpoints, outputs, span, stamps[0] / 1000 - started_wall, cpu_s)


async def _drain(
    lab: Lab,
    proc: Proc | Sequence[Proc],
    topics: list[str],
    outputs: int,
    what: str,
    on_first: Callable[[], None] | None = None,
) -> tuple[list[Record], float | None]:
    """The outputs, and the CPU time the processes used (summed) from the first one read to the last.
    `on_first` is called once the first output is read (e.g. to attach a profiler)."""
    procs = [proc] if isinstance(proc, Proc) else list(proc)
    cpu_at_first: list[float | None] = []

    def done(records: list[Record]) -> bool:
        if records and not cpu_at_first:
            cpu_at_first.append(_cpu_of(procs))
            if on_first is not None:
                on_first()
        return len(records) >= outputs

    async with Reader(lab.broker.hosts, topics) as reader:
        records = await reader.until(done, stall_s=lab.sizes.stall_timeout_s, procs=procs, what=what)
        first, last = cpu_at_first[0], _cpu_of(procs)
        return records, None if first is None or last is None else last - first


def _cpu_of(procs: Sequence[Proc]) -> float | None:
    """The processes' CPU seconds so far, summed; None if one is gone."""
    times = [p.cpu_seconds() for p in procs]
    return None if any(t is None for t in times) else sum(t for t in times if t is not None)


def _fresh_pair(lab: Lab, case: str) -> tuple[str, str]:
    tag = lab.tag(case)
    source, sink = f"{tag}-in", f"{tag}-out"
    asyncio.run(create_topics(lab.broker.hosts, [source, sink], lab.sizes.partitions))
    asyncio.run(preload(lab.broker.hosts, source, lab.lines))
    return tag, sink


def passthrough(lab: Lab) -> Drain:
    tag, sink = _fresh_pair(lab, "passthrough")
    count = len(lab.lines)
    command = python_command("-m", "bench.passthrough", "--broker", lab.broker.hosts, "--source", f"{tag}-in")
    command += ["--sink", sink, "--group", tag, "--count", str(count)]
    command += ["--session-timeout-ms", str(round(lab.session_timeout_s * 1000))]
    proc = lab.procs.start("passthrough", command, dict(os.environ))
    try:
        records, cpu_s = asyncio.run(_drain(lab, proc, [sink], count, "passthrough"))
    finally:
        lab.procs.stop(proc)
    return drain_of(records, count, count, proc.started_wall, cpu_s)


def faust_baseline(lab: Lab, store: str) -> Drain:
    tag, sink = _fresh_pair(lab, "faust")
    count = len(lab.lines)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("FUNNEL_", "BENCH_"))}
    env.update(
        {
            "BENCH_BROKER_URL": lab.broker.url,
            "BENCH_SOURCE": f"{tag}-in",
            "BENCH_SINK": sink,
            "BENCH_APP_ID": tag,
            "BENCH_PARTITIONS": str(lab.sizes.partitions),
            "BENCH_STORE": store,
            "BENCH_DATA_DIR": str(lab.work / tag),
            "BENCH_SESSION_TIMEOUT": f"{lab.session_timeout_s:g}",
            "BENCH_FETCH_WAIT_MS": str(lab.fetch_wait_ms),
        }
    )
    command = python_command("-m", "bench.faust_baseline", "worker", "--without-web", "-l", "warn")
    proc = lab.procs.start("faust-baseline", command, env)
    try:
        records, cpu_s = asyncio.run(_drain(lab, proc, [sink], count, "faust baseline"))
    finally:
        lab.procs.stop(proc)
    drain = drain_of(records, count, count, proc.started_wall, cpu_s)
    drain.extra["store"] = store
    return drain


@dataclass
class WorkerDrain:
    drain: Drain
    data_dir: Path  # the worker's RocksDB tables, kept for case 6


def worker(lab: Lab, store: str, watch: Callable[[Proc], Watch] | None = None) -> WorkerDrain:
    """Case 3. With `watch`, watch(worker) is started at the first output and stopped after the last
    (bench/profile.py attaches py-spy so)."""
    env = lab.worker_env("throughput", store=store)
    lab.create_worker_topics(env)
    expected = expected_outputs(lab.lines, lab.sizes.partitions)
    asyncio.run(preload(lab.broker.hosts, env["FUNNEL_TOPIC_TOUCHPOINTS"], lab.lines))
    proc = lab.start_worker("worker-throughput", env)
    watching: list[Watch] = []

    def on_first() -> None:
        if watch is not None:
            watching.append(watch(proc))

    try:
        records, cpu_s = asyncio.run(_drain(lab, proc, lab.outputs(env), expected, "worker", on_first))
        for watcher in watching:
            watcher.stop()
    finally:
        code = lab.procs.stop(proc)
    drain = drain_of(records, len(lab.lines), expected, proc.started_wall, cpu_s)
    drain.extra.update({"store": store, "worker_exit_code": code})
    return WorkerDrain(drain, Path(env["FUNNEL_DATA_DIR"]))


def rekeyed_worker(lab: Lab, store: str) -> Drain:
    """Case 3r: case 3's touchpoints as Segment events keyed by message id, re-keyed by contact first."""
    env = lab.worker_env("rekeyed", store=store, input_format="segment")
    source = env["FUNNEL_TOPIC_TOUCHPOINTS"]
    asyncio.run(create_topics(lab.broker.hosts, [source], 1))  # `topics create` keeps an existing input topic
    lab.create_worker_topics(env)
    shaper = Shaper("segment", DEFAULT_MAPPING)
    events = [orjson.dumps(event) for line in lab.lines for event in shaper.shape(orjson.loads(line))]
    expected = expected_outputs(lab.lines, lab.sizes.partitions)
    asyncio.run(produce(lab.broker.hosts, source, ((record_key("segment", e) or b"", e) for e in events)))
    proc = lab.start_worker("worker-rekeyed", env)
    try:
        records, cpu_s = asyncio.run(_drain(lab, proc, lab.outputs(env), expected, "re-keyed worker"))
    finally:
        code = lab.procs.stop(proc)
    drain = drain_of(records, len(lab.lines), expected, proc.started_wall, cpu_s)
    drain.extra.update(
        {"store": store, "segment_events": len(events), "source_partitions": 1, "worker_exit_code": code}
    )
    return drain
