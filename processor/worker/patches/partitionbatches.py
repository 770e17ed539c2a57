"""One topic's fetched records taken from Faust's consumer a partition's list at a time.

Faust hands every fetched record through its drain loop (`Consumer._drain_messages`:
a `wait_first` of three tasks per record), its conductor, a channel queue and the
stream's iteration, which made about 40% of the journeys agent's time per touchpoint.
This takes one topic's records out of each fetch, in the call the drain loop awaits
for it (`Consumer._getmany`, which returns the fetched records by partition), and
hands them over as one list per partition. Everything else stays Faust's: group
membership, rebalances, which partitions are fetched (paused during table recovery),
the fetch itself, the other topics' records (ticks, changelogs), and offset commits:
the records taken here are acked into the consumer's own bookkeeping (`ack`, as
`Consumer.ack` does for one message), which its commit timer reads.

At a rebalance Faust stops the flow, waits until every record it has handed out is
acked (`Consumer.wait_empty`), then seeks every partition it is assigned back to its
committed offset. The same holds here: a list is handed over only while the flow
runs and in the generation it was fetched in (`current`); the taker holds a marker
in the consumer's set of unacked messages from the first record it takes until its
batch is acked (`opened`, `acked`), so Faust waits for that batch as for its own
messages; a list fetched in an earlier generation is dropped, unacked, and read
again from the committed offset.

What this leans on in faust-streaming 0.15.3 is checked by
tests/unit/test_partitionbatches.py, which fails when an upgrade moves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from faust.events import Event
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from mode.utils.futures import notify

HANDED_OVER_MAX = 4  # partition lists waiting for the taker; the fetcher waits beyond that

__all__ = ["HANDED_OVER_MAX", "PartitionBatches", "Taken"]


class Taken:
    """A partition's records handed over in one fetch, and the generation they were fetched in."""

    __slots__ = ("generation", "records", "tp")

    def __init__(self, tp: TP, records: list[Any], generation: int) -> None:
        self.tp, self.records, self.generation = tp, records, generation


class _OpenBatch:
    """Stands in the consumer's set of unacked messages for a batch being processed: Faust's
    rebalance and stop wait until it is acked (`Consumer.wait_empty`)."""

    __slots__ = ("__weakref__", "acked", "refcount")

    def __init__(self) -> None:
        self.acked = False
        self.refcount = 1


class PartitionBatches:
    """The records of `topic` from the app's consumer, one fetched list per partition."""

    def __init__(self, app: Any, topic: str) -> None:
        self.app, self.topic = app, topic
        self.waiting: asyncio.Queue[Taken] = asyncio.Queue(maxsize=HANDED_OVER_MAX)
        self._open: _OpenBatch | None = None
        self._consumer: Any = None

    @property
    def installed(self) -> Any:
        """The consumer this hands over from, once installed."""
        return self._consumer

    # -- Faust's side ---------------------------------------------------------------

    def install(self, consumer: Any) -> None:
        """Route the consumer's fetches through `_hand_over` (wrapped once per consumer; one
        `PartitionBatches` per topic: the journeys agent's input, the re-keyer's source)."""
        takers: dict[str, PartitionBatches] | None = getattr(consumer, "_funnel_partition_batches", None)
        if takers is None:
            takers = {}
            original: Callable[..., Any] = consumer._getmany  # noqa: SLF001 -- the faust call patched here

            async def _getmany(active_partitions: Any, timeout: float) -> Any:
                records = await original(active_partitions=active_partitions, timeout=timeout)
                return await _hand_over(takers, consumer, records)

            consumer._getmany = _getmany  # noqa: SLF001 -- an instance attribute: the drain loop calls self._getmany
            consumer._funnel_partition_batches = takers  # noqa: SLF001 -- our marker
        if self.topic in takers:
            raise RuntimeError(f"the consumer already hands {self.topic!r} over in batches")
        takers[self.topic] = self
        self._consumer = consumer

    async def _put(self, taken: Taken) -> bool:
        """Queue a list for the taker, waiting while the queue is full; False if the flow stopped first."""
        put = asyncio.ensure_future(self.waiting.put(taken))
        stopped = asyncio.ensure_future(self._consumer.suspend_flow.wait())
        try:
            await asyncio.wait((put, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not put.done():
                put.cancel()
        if not put.done() or put.cancelled():
            return False
        monitor = self.app.monitor
        # As Faust's getmany does per record: the partition's end offset, for the sensor.
        try:
            highwater = self._consumer.highwater(taken.tp)
        except (ConsumerNotStarted, KeyError, AssertionError, TypeError, ValueError):
            highwater = None
        if highwater is not None:
            monitor.track_tp_end_offset(taken.tp, highwater)
        counted = getattr(monitor, "on_records_in", None)  # the worker's sensor counts them
        if counted is not None:
            counted(taken.tp, len(taken.records), taken.records[-1].offset)
        return True

    # -- the taker's side -----------------------------------------------------------

    def current(self, taken: Taken) -> bool:
        """Whether records of `taken` may still be processed: fetched in this generation, the flow running."""
        consumer = self._consumer
        return consumer is not None and consumer.flow_active and self.app.consumer_generation_id == taken.generation

    def opened(self) -> None:
        """The taker starts a batch: Faust's rebalance and stop now wait until it is acked."""
        if self._open is None and self._consumer is not None:
            self._open = _OpenBatch()
            self._consumer._unacked_messages.add(self._open)  # noqa: SLF001 -- what wait_empty waits on

    def event_for(self, tp: TP, record: Any) -> Event:
        """A Faust event for `record`: table writes are placed by the current event's partition."""
        message = self._consumer._to_message(tp, record)  # noqa: SLF001 -- faust's own record -> message
        return Event(self.app, record.key, record.value, message.headers, message)

    def ack(self, offsets: Mapping[tuple[TP, int], Iterable[int]]) -> None:
        """The records processed and made durable (by partition and the generation they were
        fetched in), acked into the consumer's commit bookkeeping; the open batch is closed.

        Offsets fetched in an earlier generation are not acked: the partition was sought
        back to its committed offset since, as Faust's stream does for its own messages."""
        consumer = self._consumer
        if consumer is None:
            return
        generation = self.app.consumer_generation_id
        done = 0
        acked_lists, acked_indexes, committed_at = consumer._acked, consumer._acked_index, consumer._committed_offset  # noqa: SLF001
        for (tp, fetched_in), taken in offsets.items():
            if fetched_in != generation:
                continue
            committed = committed_at[tp]
            index = acked_indexes[tp]
            new = [o for o in taken if (committed is None or o >= committed) and o not in index]
            index.update(new)
            acked_lists[tp].extend(new)
            consumer._n_acked += len(new)  # noqa: SLF001
            done += len(new)
        counted = getattr(self.app.monitor, "on_records_out", None)
        if counted is not None and done:
            counted(done)
        if self._open is not None:
            self._open.acked = True
            consumer._unacked_messages.discard(self._open)  # noqa: SLF001
            self._open = None
        notify(consumer._waiting_for_ack)  # noqa: SLF001 -- wakes wait_empty

    def dropped(self) -> None:
        """The open batch is dropped unacked (the worker is stopping): Faust need not wait for it."""
        if self._open is not None and self._consumer is not None:
            self._open.acked = True
            self._consumer._unacked_messages.discard(self._open)  # noqa: SLF001
            self._open = None

    def clear(self) -> None:
        """Drop what is waiting (a rebalance): fetched again from the committed offsets."""
        while not self.waiting.empty():
            self.waiting.get_nowait()


async def _hand_over(takers: dict[str, PartitionBatches], consumer: Any, records: Any) -> Any:
    """The fetched records of the topics taken in batches to their takers; the rest, for Faust."""
    if not records or not any(tp.topic in takers for tp in records):
        return records
    rest = {tp: recs for tp, recs in records.items() if tp.topic not in takers}
    app = consumer.app
    generation = app.consumer_generation_id
    for tp, recs in records.items():
        taker = takers.get(tp.topic)
        if taker is None or not recs:
            continue
        # As Faust's own getmany: nothing is handed out once the flow stopped for a rebalance
        # (the partitions are sought back to their committed offsets before it resumes).
        if not consumer.flow_active or app.consumer_generation_id != generation:
            break
        if not await taker._put(Taken(tp, recs, generation)):  # noqa: SLF001 -- this module's
            break
    return rest
