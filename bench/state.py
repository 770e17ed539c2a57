"""Case 6: bytes per tracked contact, and the time a restarted worker takes to recover N contacts.

Recovery: pushing a million touchpoints through the worker would take far too long, so
the journeys changelog is written directly, in the format the worker writes
(`processor.worker.state.entry.encode_entry`, headers for the presets the worker runs): the core Engine
runs over the input file, and its contact states are replicated under new contact ids
(`r-0000000`...), each record in the partition Kafka's default partitioner gives its
key. One probe touchpoint per partition waits in the input topic (bench/probes.py). A
worker with the memory store is started, and the time from its start until every
partition has answered a probe is the recovery time (start-up, group join, reading the
changelog, rebuilding timers, processing).

Memory store: the worker's resident memory (VmRSS) after that, minus the RSS of the
same worker with no contacts (probes only), over N. RocksDB: the size of the journeys
tables' data files (SST and WAL) that case 3's worker left after its graceful stop,
over the contacts they hold.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.lab import Lab
from bench.probes import Probes, until_processing
from bench.procs import BenchError, Proc
from bench.streams import produce
from processor.config.definitions import PRESETS, load_funnels
from processor.config.settings import Settings
from processor.funnel.engine import Engine
from processor.funnel.touchpoint import decode
from processor.kafka.clients import changelog_topics
from processor.worker.outbox import default_partition
from processor.worker.state.entry import Layout, encode_entry

SETTLE_S = 2.0  # after the probes' outputs, before reading RSS
OFFSET_KEY = b"__faust\0offset__"  # where Faust's RocksDB store keeps a partition's changelog offset


def sample_states(lines: list[bytes]) -> tuple[list[bytes], int]:
    """Encoded entries of every contact the core Engine holds after the input; and its final clock."""
    funnels = load_funnels(PRESETS)  # the worker's default funnels, in its order
    engine = Engine(funnels)
    for line in lines:
        engine.observe(decode(line))
    if engine.clock is None or not engine.store:
        raise BenchError("the input left no contact states to replicate")
    # No touchpoint applied from this worker's input yet: offset -1 ("none").
    layout = Layout(funnels)
    return [encode_entry(-1, state, layout) for state in engine.store.values()], engine.clock


def raw_entry_bytes(sample: list[bytes], contacts: int) -> float:
    """Bytes per contact of the table entries alone (a dict of key and value bytes, as a memory
    store holds them), by tracemalloc: the part of the worker's RSS per contact that is data."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        table = {key: bytes(bytearray(value)) for key, value in _changelog(sample, contacts)}
        size = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return size / len(table)


def _changelog(sample: list[bytes], contacts: int) -> Iterator[tuple[bytes, bytes]]:
    for i in range(contacts):
        yield f"r-{i:07d}".encode(), sample[i % len(sample)]


async def _count_held(hosts: str, topic: str, partitions: int) -> int:
    """Records the broker holds in a topic, from fetch high watermarks (Tansu's ListOffsets is short)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=hosts, enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(ends[tp] - 1, 0))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in tps):
            await consumer.getmany(timeout_ms=100)
        return sum(consumer.highwater(tp) or 0 for tp in tps)
    finally:
        await consumer.stop()


@dataclass
class Recovered:
    contacts: int
    seconds: float  # worker start -> the last probe's output
    rss: int
    peak_rss: int


def _write_changelog(lab: Lab, env: dict[str, str], sample: list[bytes], contacts: int) -> dict[str, Any]:
    """The journeys changelog of a worker's topic set, filled with `contacts` entries."""
    journeys = changelog_topics(Settings.from_env(env))[0]
    partitions = lab.sizes.partitions
    built: dict[str, Any] = {}
    started = time.monotonic()
    records = _changelog(sample, contacts)
    asyncio.run(produce(lab.broker.hosts, journeys, records, lambda key: default_partition(key, partitions)))
    built["changelog_write_s"] = round(time.monotonic() - started, 1)
    held = asyncio.run(_count_held(lab.broker.hosts, journeys, partitions))
    built["changelog_records_held"] = held
    if held < contacts:
        raise BenchError(f"the broker holds {held} of the {contacts} changelog records written")
    if lab.broker.is_tansu:
        tansu = next(p for p in lab.procs.live if p.name == "tansu")
        built["tansu_rss_mb"] = round(tansu.rss_bytes() / 2**20)
    return built


def recover(lab: Lab, sample: list[bytes], clock: int, contacts: int) -> tuple[Recovered, dict[str, Any]]:
    """A memory-store worker started over a changelog of `contacts` states (0: none) and the probes."""
    env = lab.worker_env(f"recovery{contacts}", store="memory")
    lab.create_worker_topics(env)
    partitions = lab.sizes.partitions
    built = _write_changelog(lab, env, sample, contacts) if contacts else {}
    probes = Probes(partitions, clock)
    workers: list[Proc] = []

    def start() -> Proc:
        workers.append(lab.start_worker(f"worker-recovery-{contacts}", env))
        return workers[-1]

    try:
        proc, seconds = asyncio.run(until_processing(lab, env, start, probes))
        built["probes_left_out"] = probes.left_out()
        built.update(_log_times(proc.log.read_text(errors="replace"), proc.started_wall))
        time.sleep(SETTLE_S)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        peak = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:"))
        return Recovered(contacts, seconds, proc.rss_bytes(), peak), built
    finally:
        for worker in workers:
            lab.procs.stop(worker)


@dataclass
class Restarted:
    contacts: int
    cold_s: float  # first start, the whole changelog to read -> every partition answers a probe
    seconds: float  # second start, over the first one's RocksDB tables -> every partition answers


def restart(lab: Lab, sample: list[bytes], clock: int, contacts: int) -> tuple[Restarted, dict[str, Any]]:
    """A RocksDB-store worker started over a changelog of `contacts` states, stopped with SIGTERM
    once it answers probes, and started again on the same data directory, as a pod of the
    StatefulSet restarts on its persistent volume: Faust then reads only the changelog past the
    offsets its tables persisted."""
    env = lab.worker_env(f"restart{contacts}", store="rocksdb")
    lab.create_worker_topics(env)
    built = _write_changelog(lab, env, sample, contacts)
    data_dir = Path(env["FUNNEL_DATA_DIR"])
    workers: list[Proc] = []

    def start() -> Proc:
        workers.append(lab.start_worker(f"worker-restart-{contacts}-{len(workers) + 1}", env))
        return workers[-1]

    try:
        partitions = lab.sizes.partitions
        first, cold = asyncio.run(until_processing(lab, env, start, Probes(partitions, clock, "bench-cold-")))
        log = first.log.read_text(errors="replace")
        built["cold"] = {"seconds": round(cold, 1), "contacts_held": _contacts_held(log, contacts)}
        built["cold"].update(_log_times(log, first.started_wall))
        stopping = time.monotonic()
        code = lab.procs.stop(first)
        built["stop"] = {"exit_code": code, "seconds": round(time.monotonic() - stopping, 1)}
        if code < 0:
            raise BenchError(f"the first worker did not stop on SIGTERM (exit {code}); see {first.log}")
        persisted = persisted_offsets(data_dir)
        built["persisted_changelog_offsets"] = {str(partition): offset for partition, offset in persisted.items()}
        if sum(offset + 1 for offset in persisted.values()) < contacts:
            raise BenchError(f"the stopped worker's tables persisted changelog offsets {persisted}, under {contacts}")
        second, seconds = asyncio.run(until_processing(lab, env, start, Probes(partitions, clock, "bench-warm-")))
        log = second.log.read_text(errors="replace")
        built["restart"] = {"contacts_held": _contacts_held(log, contacts)}
        built["restart"].update(_log_times(log, second.started_wall))
        return Restarted(contacts, cold, seconds), built
    finally:
        for worker in workers:
            lab.procs.stop(worker)
        shutil.rmtree(data_dir, ignore_errors=True)


_HELD = re.compile(r"partition (\d+): (\d+) contacts, timers rebuilt")


def _contacts_held(log: str, contacts: int) -> int:
    """Contacts the worker found in its table when it took its partitions on (its log), at least `contacts`."""
    held = {int(part): int(n) for part, n in _HELD.findall(log)}
    total = sum(held.values())
    if total < contacts:
        raise BenchError(f"the worker found {total} contacts in its tables (partitions {held}), not {contacts}")
    return total


def persisted_offsets(data_dir: Path) -> dict[int, int]:
    """Changelog offset each journeys partition's RocksDB table recorded as written (Faust's offset key)."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[int, int] = {}
    for db in sorted(data_dir.glob("*/tables/journeys-*.db")):
        table = Rdict(str(db), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            offset = table.get(OFFSET_KEY)
        finally:
            table.close()
        if offset is not None:
            found[int(db.stem.rsplit("-", 1)[1])] = int(offset)
    return found


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
_TIMERS = re.compile(r"timers rebuilt in ([0-9.]+)s")


def _log_times(log: str, start_wall: float) -> dict[str, float]:
    """Best effort, from the worker's log: when Faust finished reading the changelog, and the
    time the worker spent rebuilding timers. Informational only; absent if the lines change."""
    found: dict[str, float] = {}
    for line in log.splitlines():
        stamp = _LOG_TIME.match(line)
        if stamp and "Recovery complete" in line:
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            found["changelog_read_after_s"] = round(at - start_wall, 1)
        if rebuilt := _TIMERS.search(line):
            found["timers_rebuilt_s"] = round(found.get("timers_rebuilt_s", 0.0) + float(rebuilt.group(1)), 2)
    return found


def rocksdb_bytes(data_dir: Path) -> tuple[int, int, int]:
    """(bytes in data files, contacts, files) of the journeys tables a stopped worker left."""
    from rocksdict import AccessType, Options, Rdict

    size = files = contacts = 0
    for db in sorted(data_dir.glob("*/tables/journeys-*.db")):
        for path in db.iterdir():
            if path.suffix in (".sst", ".log") and path.stem.isdigit():
                size += path.stat().st_size
                files += 1
        table = Rdict(str(db), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:  # Faust keeps its changelog offset in the table too
            keys = table.keys()  # raw mode: bytes
            contacts += sum(1 for key in keys if isinstance(key, bytes) and not key.startswith(b"__faust"))
        finally:
            table.close()
    if not contacts:
        raise BenchError(f"no journeys tables with contacts under {data_dir}")
    return size, contacts, files
