"""Workarounds for brokers that bend the Kafka protocol. Off unless a setting turns them on.

Short end offsets (Tansu 0.6, the broker of the demo and tests): ListOffsets(latest)
answers the base offset of the partition's last record batch + 1 rather than the
partition's end, whenever that batch holds more than one record. Faust recovers a
table up to that end offset, so a restarted worker would drop the last changelog
records (memory store) or refuse to start (RocksDB: "persisted offset is higher than
the highwater"). A fetch response carries the true high watermark, so with
FUNNEL_END_OFFSETS_FROM_FETCH=true the worker asks for one and keeps the larger
value. On a broker that answers correctly the two agree and only a short fetch is
spent at recovery. Measured in docs/research/faust-on-tansu.md (section 5.2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 5.0


async def fetched_highwaters(connection: Mapping[str, Any], short: Mapping[TP, int]) -> dict[TP, int]:
    """High watermarks from fetch responses, never below the `short` ones given. `connection`: the
    worker's aiokafka connection (brokers, security, credentials: processor/worker/app.py)."""
    result = dict(short)
    todo = [tp for tp, offset in short.items() if offset]
    if not todo:
        return result
    probe = AIOKafkaConsumer(**connection, enable_auto_commit=False, fetch_max_wait_ms=50)
    await probe.start()
    try:
        probe.assign(todo)
        for tp in todo:
            probe.seek(tp, max(short[tp] - 1, 0))
        deadline = time.monotonic() + FETCH_TIMEOUT_S
        while time.monotonic() < deadline and any(probe.highwater(tp) is None for tp in todo):
            await probe.getmany(timeout_ms=100)
        for tp in todo:
            fetched = probe.highwater(tp)
            if fetched is not None and fetched > short[tp]:
                log.warning("end offset of %s: ListOffsets said %d, a fetch says %d", tp, short[tp], fetched)
                result[tp] = fetched
    finally:
        await probe.stop()
    return result


def take_end_offsets_from_fetch(connection: Mapping[str, Any]) -> None:
    """Patch faust's changelog highwater lookup (faust-streaming 0.15) to use fetched values, read
    over the worker's own connection (its SASL and TLS settings included)."""
    thread = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, "_funnel_end_offsets_from_fetch", False):
        return
    original = thread._highwaters  # noqa: SLF001 -- the faust method patched here, for Tansu

    async def _highwaters(self: Any, partitions: Iterable[TP]) -> Mapping[TP, int]:
        short = await original(self, list(partitions))
        if self.consumer.in_transaction:
            return short
        return await fetched_highwaters(connection, short)

    setattr(thread, "_highwaters", _highwaters)  # noqa: B010 - a deliberate, named patch
    setattr(thread, "_funnel_end_offsets_from_fetch", True)  # noqa: B010
    log.warning("FUNNEL_END_OFFSETS_FROM_FETCH: table recovery takes end offsets from fetch responses")
