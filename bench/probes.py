"""Probe touchpoints: how the harness tells that a restarted worker is processing every partition.

A partition counts as processing once one of its probes has an output. Faust can leave out
the first record of a partition a worker has just taken on (docs/research/faust-on-tansu.md,
section 5.3; the harness sees it in most recovery runs), so a partition still without an
output gets a new probe every REPROBE_S, and the probes left out are counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.lab import Lab
from bench.procs import BenchError, Proc
from bench.streams import Reader, Record
from processor.funnel.timefmt import format_time
from processor.worker.outbox import default_partition

REPROBE_S = 1.0
RECOVERY_TIMEOUT_S = 900.0


def _probe(key: bytes, at: str) -> bytes:
    contact = key.decode()
    return orjson.dumps({"event_id": contact, "contact_id": contact, "type": "page_view", "occurred_at": at})


class Probes:
    """Page views of new contacts, one per unanswered partition per wave, at a given event time."""

    def __init__(self, partitions: int, clock: int, prefix: str = "bench-probe-") -> None:
        self.partitions, self.at, self.prefix = partitions, format_time(clock), prefix
        self.partition: dict[bytes, int] = {}
        self.answered: dict[int, float] = {}  # partition -> when its first probe output arrived
        self.replied: set[bytes] = set()
        self.offset: dict[bytes, int] = {}  # filled in once every probe is acknowledged
        self._k = 0

    def wave(self) -> list[tuple[bytes, bytes]]:
        wanted = set(range(self.partitions)) - set(self.answered)
        found: dict[int, bytes] = {}
        while wanted - set(found):
            key = f"{self.prefix}{self._k}".encode()
            self._k += 1
            part = default_partition(key, self.partitions)
            if part in wanted:
                found.setdefault(part, key)
        self.partition.update({key: part for part, key in found.items()})
        return [(key, _probe(key, self.at)) for key in found.values()]

    def see(self, records: list[Record]) -> None:
        for record in records:
            if record.key in self.partition:
                self.replied.add(record.key)
                self.answered.setdefault(self.partition[record.key], record.arrival)

    def left_out(self) -> list[tuple[int, int]]:
        """(partition, offset) of probes never answered although a later probe of their partition was."""
        latest: dict[int, int] = {}
        for key in self.replied:
            part = self.partition[key]
            latest[part] = max(latest.get(part, -1), self.offset[key])
        return sorted(
            (part, self.offset[key])
            for key, part in self.partition.items()
            if key not in self.replied and self.offset[key] < latest.get(part, -1)
        )


async def until_processing(
    lab: Lab, env: dict[str, str], start: Callable[[], Proc], probes: Probes
) -> tuple[Proc, float]:
    """Send the first wave, start() the worker, re-probe until every partition answered.

    Returns the worker and the wall time from its start until the last partition answered.
    """
    topic = env["FUNNEL_TOPIC_TOUCHPOINTS"]
    producer = AIOKafkaProducer(bootstrap_servers=lab.broker.hosts, acks="all")
    await producer.start()
    sent: dict[bytes, asyncio.Future[Any]] = {}

    async def send_wave() -> None:
        for key, value in probes.wave():
            sent[key] = await producer.send(topic, key=key, value=value)

    try:
        await send_wave()
        await asyncio.gather(*sent.values())  # waiting in the topic before the worker starts
        async with Reader(lab.broker.hosts, lab.outputs(env), fetch_wait_ms=20) as reader:
            proc = start()
            deadline = time.monotonic() + RECOVERY_TIMEOUT_S
            next_wave = time.monotonic() + REPROBE_S
            while len(probes.answered) < probes.partitions:
                probes.see(await reader.poll(timeout_ms=100))
                proc.check_running()
                if time.monotonic() > next_wave:
                    await send_wave()
                    next_wave += REPROBE_S
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"after {RECOVERY_TIMEOUT_S:g} s only partitions {sorted(probes.answered)} answer probes"
                    )
        for key, future in sent.items():
            probes.offset[key] = (await future).offset
    finally:
        await producer.stop()
    return proc, max(probes.answered.values()) - proc.started_wall
