"""Cases 4 and 5, one live run: latency, and how late drop-offs arrive after their deadline.

A worker (same store as case 3; the four presets plus `bench/funnels/stall-probe.json`,
whose stages stall after 2 s) is fed the input's touchpoints at half of case 3's
sustained rate, each stamped with occurred_at = the time it is sent (live traffic, so
event time follows the wall clock). One process sends and reads, so both ends use one
clock.

- Latency: for each transition, the time its trigger touchpoint was handed to the
  producer -> the time this reader received the transition.
- Drop-off lateness: for each stall of the stall-probe funnel, the time it was received
  minus its deadline (the drop-off's occurred_at). "Traffic flowing": a later touchpoint
  of its partition passed the deadline. "Quiet partition": the deadline came after the
  partition's last touchpoint, so only the worker's idle clock (FUNNEL_IDLE_AFTER, then
  a tick every FUNNEL_TICK_INTERVAL) could fire it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.lab import STALL_FUNNEL, Lab
from bench.procs import BenchError, Proc, python_command
from bench.streams import Reader, Record, create_topics
from processor.config.definitions import PRESETS
from processor.funnel.timefmt import format_time, parse_duration, parse_time
from processor.worker.outbox import default_partition

STALL_S = 2.0  # bench/funnels/stall-probe.json
DEFAULT_IDLE_AFTER_S = 1.0  # the worker's default FUNNEL_IDLE_AFTER
TICK_S = 0.5  # the worker's default FUNNEL_TICK_INTERVAL
READ_WAIT_MS = 10  # this reader's fetch wait: it adds at most this to each latency on a quiet broker
WARMUP = b"bench-warmup"  # the contact of the one touchpoint sent before timing starts
WARMUP_TIMEOUT_S = 90.0


def percentile(values: list[float], p: int) -> float:
    if not values:
        raise BenchError("no samples")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


@dataclass
class LiveResult:
    rate: float  # touchpoints/s sent
    sent: int
    latencies_ms: list[float] = field(default_factory=list)
    flowing_s: list[float] = field(default_factory=list)  # drop-off lateness, traffic flowing
    quiet_s: list[float] = field(default_factory=list)  # drop-off lateness, quiet partitions

    def details(self) -> dict[str, Any]:
        return {
            "rate_sent": round(self.rate, 1),
            "touchpoints_sent": self.sent,
            "transitions_timed": len(self.latencies_ms),
            "dropoffs_flowing": len(self.flowing_s),
            "dropoffs_quiet": len(self.quiet_s),
        }


def _stamp(line: bytes, now: float, lap: int) -> tuple[bytes, str, bytes]:
    """(key, event id, value) of an input line sent now; on the input's lap k > 0 its contact
    and event ids get a "~k" suffix, so a run longer than the input still sends new contacts."""
    doc = orjson.loads(line)
    if lap:
        doc["contact_id"], doc["event_id"] = f"{doc['contact_id']}~{lap}", f"{doc['event_id']}~{lap}"
    doc["occurred_at"] = format_time(int(now * 1_000_000))
    return str(doc["contact_id"]).encode(), str(doc["event_id"]), orjson.dumps(doc)


async def _warm_up(producer: AIOKafkaProducer, reader: Reader, topic: str, proc: Proc) -> None:
    """One touchpoint through the worker, so timing starts once it is processing."""
    contact = WARMUP.decode()
    doc = {"event_id": contact, "contact_id": contact, "type": "page_view"}
    doc["occurred_at"] = format_time(int(time.time() * 1_000_000))
    await producer.send_and_wait(topic, key=WARMUP, value=orjson.dumps(doc))
    await reader.until(lambda r: any(x.key == WARMUP for x in r), stall_s=WARMUP_TIMEOUT_S, procs=[proc])


async def _paced(
    producer: AIOKafkaProducer, topic: str, lines: list[bytes], count: int, rate: float, partitions: int
) -> tuple[dict[str, float], dict[int, float]]:
    """Send `count` lines at `rate`, going round the input as often as needed;
    (event id -> send time, partition -> occurred_at of its last touchpoint)."""
    sent: dict[str, float] = {}
    last_at: dict[int, float] = {}
    pending: list[asyncio.Future[Any]] = []
    start = time.monotonic()
    i = 0
    while i < count:
        due = min(count, int((time.monotonic() - start) * rate) + 1)
        while i < due:
            now = time.time()
            key, event_id, value = _stamp(lines[i % len(lines)], now, i // len(lines))
            sent.setdefault(event_id, now)
            last_at[default_partition(key, partitions)] = now
            pending.append(await producer.send(topic, key=key, value=value))
            i += 1
        if len(pending) > 1000:
            await asyncio.gather(*pending)
            pending.clear()
        await asyncio.sleep(0.002)
    await asyncio.gather(*pending)
    return sent, last_at


@dataclass
class Sent:
    records: list[Record]  # everything read, warm-up included
    at: dict[str, float]  # event id -> when it was handed to the producer
    last_at: dict[int, float]  # partition -> occurred_at of its last touchpoint
    rate: float


async def _run(lab: Lab, source: str, outputs: list[str], proc: Proc, rate: float, count: int, tail_s: float) -> Sent:
    """Warm up, send `count` input lines at `rate`, and read the outputs until `tail_s` after the last."""
    producer = AIOKafkaProducer(bootstrap_servers=lab.broker.hosts, acks="all")
    await producer.start()
    try:
        async with Reader(lab.broker.hosts, outputs, fetch_wait_ms=READ_WAIT_MS) as reader:
            await _warm_up(producer, reader, source, proc)
            started = time.monotonic()
            sending = asyncio.create_task(_paced(producer, source, lab.lines, count, rate, lab.sizes.partitions))
            while not sending.done():
                await reader.poll(timeout_ms=50)
                proc.check_running()
            at, last_at = sending.result()
            rate_sent = count / (time.monotonic() - started)
            tail_end = time.time() + tail_s
            while time.time() < tail_end:
                await reader.poll(timeout_ms=100)
            assert reader.records is not None
            return Sent(reader.records, at, last_at, rate_sent)
    finally:
        await producer.stop()


def _analyse(sent: Sent, count: int) -> LiveResult:
    result = LiveResult(sent.rate, count)
    for record in sent.records:
        if record.key == WARMUP:
            continue
        output = orjson.loads(record.value)
        if output["kind"] == "transition":
            at = sent.at.get(output["trigger"]["event_id"])
            if at is not None:
                result.latencies_ms.append((record.arrival - at) * 1000)
        elif output["funnel"] == "stall-probe" and output["reason"] == "stalled":
            deadline = parse_time(output["occurred_at"]) / 1_000_000
            lateness = record.arrival - deadline
            flowing = deadline < sent.last_at.get(record.partition, 0.0)
            (result.flowing_s if flowing else result.quiet_s).append(lateness)
    return result


def live(lab: Lab, sustained_rate: float, store: str) -> LiveResult:
    rate = sustained_rate / 2
    count = max(2, round(rate * lab.sizes.live_seconds))
    funnels = ",".join([*PRESETS, str(STALL_FUNNEL)])
    overrides: dict[str, object] = {"store": store, "funnels": funnels}
    if lab.sizes.idle_after is not None:
        overrides["idle_after"] = lab.sizes.idle_after
    idle_after = parse_duration(lab.sizes.idle_after or DEFAULT_IDLE_AFTER_S) / 1_000_000
    env = lab.worker_env("live", **overrides)
    lab.create_worker_topics(env)
    proc = lab.start_worker("worker-live", env)
    # The last deadlines fall within STALL_S of the last touchpoint; the idle clock needs
    # FUNNEL_IDLE_AFTER of quiet, then up to a tick, to fire them.
    tail_s = STALL_S + idle_after + 2 * TICK_S + 2.0
    try:
        sent = asyncio.run(_run(lab, env["FUNNEL_TOPIC_TOUCHPOINTS"], lab.outputs(env), proc, rate, count, tail_s))
    finally:
        lab.procs.stop(proc)
    return _analyse(sent, count)


def floor(lab: Lab, rate: float, count: int) -> list[float]:
    """Latencies (ms) through the raw passthrough at the same rate, its consumer waiting up to
    as long per fetch as the worker's does (Lab.fetch_wait_ms): what the broker alone adds."""
    tag = lab.tag("floor")
    source, sink = f"{tag}-in", f"{tag}-out"
    asyncio.run(create_topics(lab.broker.hosts, [source, sink], lab.sizes.partitions))
    command = python_command("-m", "bench.passthrough", "--broker", lab.broker.hosts, "--source", source)
    command += ["--sink", sink, "--group", tag, "--count", str(count + 1), "--fetch-wait-ms", str(lab.fetch_wait_ms)]
    command += ["--session-timeout-ms", str(round(lab.session_timeout_s * 1000))]
    proc = lab.procs.start("passthrough-floor", command, dict(os.environ))
    try:
        sent = asyncio.run(_run(lab, source, [sink], proc, rate, count, 2.0))
    finally:
        lab.procs.stop(proc)
    arrived: dict[str, float] = {}
    for record in sent.records:
        arrived.setdefault(str(orjson.loads(record.value)["event_id"]), record.arrival)
    return [(arrived[event] - at) * 1000 for event, at in sent.at.items() if event in arrived]
