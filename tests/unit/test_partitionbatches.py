"""The journeys agent's input taken from Faust's consumer a partition's list at a time
(processor/worker/patches/partitionbatches.py), on a real faust-streaming consumer (built,
never started). The first test reads faust's source for each thing the patch leans on: it
fails when a faust-streaming upgrade moves one of them, and says which."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.transport.consumer import Consumer, ThreadDelegateConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from processor.worker.patches.partitionbatches import HANDED_OVER_MAX, PartitionBatches, Taken

TOPIC = "touchpoints"


def record(partition: int, offset: int, topic: str = TOPIC) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 1_700_000_000_000, 0, b"c1", b"{}", None, 2, 2, ())


def source(owner: Any, name: str) -> str:
    """The source of `owner.name` (faust internals are named, not accessed)."""
    return inspect.getsource(getattr(owner, name))


def test_what_the_patch_leans_on_is_where_it_was_in_faust() -> None:
    leaned_on = {
        # the fetch the drain loop awaits, which the patch wraps per consumer instance
        "Consumer._wait_next_records awaits self._getmany(active_partitions=..., timeout=...)": (
            "await self._getmany(" in source(Consumer, "_wait_next_records")
            and "active_partitions=active_partitions" in source(Consumer, "_wait_next_records")
        ),
        "Consumer.getmany hands nothing out once the flow stopped, and checks the generation": (
            "self.flow_active" in source(Consumer, "getmany")
            and "consumer_generation_id" in source(Consumer, "getmany")
        ),
        "the drain loop waits on suspend_flow per message": "self.suspend_flow.wait()"
        in source(Consumer, "_drain_messages"),
        "Consumer.ack keeps _acked, _acked_index and _n_acked": all(
            name in source(Consumer, "ack") for name in ("self._acked_index[tp]", "self._acked[tp]", "self._n_acked")
        ),
        "commits read the acked offsets from _acked": "self._acked[tp]" in source(Consumer, "_new_offset"),
        "wait_empty waits on _unacked_messages": "self._unacked_messages" in source(Consumer, "wait_empty"),
        "acked entries of _unacked_messages are dropped by their .acked": "message.acked"
        in source(Consumer, "_clean_unacked_messages"),
        "a rebalance stops the flow, then waits for handed-out messages": (
            "consumer.stop_flow" in source(faust.App, "_on_partitions_revoked")
            and "_consumer_wait_empty" in source(faust.App, "_on_partitions_revoked")
        ),
        "the aiokafka consumer turns a record into a message with _to_message": "ConsumerMessage("
        in source(faust_aiokafka.Consumer, "_to_message"),
        "Faust's getmany tracks each partition's end offset for the sensor": "track_tp_end_offset"
        in source(Consumer, "getmany"),
        "the aiokafka consumer's _getmany returns the fetched records by partition": "getmany"
        in source(ThreadDelegateConsumer, "_getmany"),
    }
    moved = [what for what, holds in leaned_on.items() if not holds]
    assert not moved, f"faust-streaming moved what partitionbatches.py leans on; recheck the patch: {moved}"


@pytest.fixture
def consumer() -> Iterator[tuple[Any, Any]]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = faust.App("partition-batches-test", broker="kafka://127.0.0.1:9", store="memory://", autodiscover=False)
    consumer: Any = app.consumer
    try:
        yield app, consumer
    finally:
        consumer._thread.thread_loop.close()  # noqa: SLF001 -- never started
        asyncio.set_event_loop(None)
        loop.close()


def run(awaitable: Awaitable[Any]) -> Any:
    return asyncio.get_event_loop().run_until_complete(awaitable)


def fetching(consumer: Any, fetched: dict[TP, list[Any]]) -> Callable[..., Awaitable[dict[TP, list[Any]]]]:
    consumer.highwater = lambda tp: 100  # what the fetch responses said (the consumer is never started)

    async def _getmany(active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        return dict(fetched)

    return _getmany


def test_a_fetch_hands_the_topics_partitions_over_and_leaves_the_rest_to_faust(consumer: tuple[Any, Any]) -> None:
    app, c = consumer
    mine, ticks = TP(TOPIC, 0), TP("ticks", 0)
    c._getmany = fetching(c, {mine: [record(0, 5), record(0, 6)], ticks: [record(0, 1, "ticks")]})  # noqa: SLF001
    batches = PartitionBatches(app, TOPIC)
    batches.install(c)
    rest = run(c._getmany(active_partitions={mine, ticks}, timeout=0.1))  # noqa: SLF001
    assert list(rest) == [ticks]
    taken = batches.waiting.get_nowait()
    assert (taken.tp, [r.offset for r in taken.records]) == (mine, [5, 6])
    assert app.monitor.tp_end_offsets[mine] == 100  # as Faust's getmany tracks it, for the sensor
    assert batches.current(taken)
    with pytest.raises(RuntimeError):
        PartitionBatches(app, TOPIC).install(c)  # one taker per topic


def test_two_topics_each_to_its_taker(consumer: tuple[Any, Any]) -> None:
    app, c = consumer
    mine, source, ticks = TP(TOPIC, 0), TP("source", 0), TP("ticks", 0)
    fetched = {mine: [record(0, 5)], source: [record(0, 7, "source")], ticks: [record(0, 1, "ticks")]}
    c._getmany = fetching(c, fetched)  # noqa: SLF001
    journeys, rekeyer = PartitionBatches(app, TOPIC), PartitionBatches(app, "source")
    journeys.install(c)
    rekeyer.install(c)
    assert list(run(c._getmany(active_partitions=set(fetched), timeout=0.1))) == [ticks]  # noqa: SLF001
    assert journeys.waiting.get_nowait().tp == mine
    assert rekeyer.waiting.get_nowait().tp == source


def test_nothing_is_handed_over_once_a_rebalance_stopped_the_flow(consumer: tuple[Any, Any]) -> None:
    app, c = consumer
    mine = TP(TOPIC, 1)
    c._getmany = fetching(c, {mine: [record(1, 0)]})  # noqa: SLF001
    batches = PartitionBatches(app, TOPIC)
    batches.install(c)
    taken = Taken(mine, [record(1, 0)], app.consumer_generation_id)
    c.stop_flow()
    assert run(c._getmany(active_partitions={mine}, timeout=0.1)) == {}  # noqa: SLF001
    assert batches.waiting.empty()
    assert not batches.current(taken)  # what was handed over before is not processed on


def test_a_full_hand_over_waits_and_gives_up_when_the_flow_stops(consumer: tuple[Any, Any]) -> None:
    app, c = consumer
    mine = TP(TOPIC, 2)
    c._getmany = fetching(c, {mine: [record(2, 9)]})  # noqa: SLF001
    batches = PartitionBatches(app, TOPIC)
    batches.install(c)
    for _ in range(HANDED_OVER_MAX):
        batches.waiting.put_nowait(Taken(mine, [], 0))

    async def fetch_then_stop() -> dict[TP, list[Any]]:
        fetch = asyncio.ensure_future(c._getmany(active_partitions={mine}, timeout=0.1))  # noqa: SLF001
        await asyncio.sleep(0.05)
        assert not fetch.done()  # the fetcher waits for the taker, as for a full stream buffer
        c.stop_flow()
        return await asyncio.wait_for(fetch, 1.0)

    assert run(fetch_then_stop()) == {}
    assert batches.waiting.qsize() == HANDED_OVER_MAX  # the fetched list was not queued


def test_taken_records_are_acked_into_faust_commits_and_the_open_batch_is_waited_for(
    consumer: tuple[Any, Any],
) -> None:
    app, c = consumer
    mine = TP(TOPIC, 3)
    batches = PartitionBatches(app, TOPIC)
    c._getmany = fetching(c, {})  # noqa: SLF001
    batches.install(c)
    c._committed_offset[mine] = 10  # noqa: SLF001
    batches.opened()
    assert len(c._unacked_messages) == 1  # noqa: SLF001 -- a rebalance or stop waits for it
    generation = app.consumer_generation_id
    batches.ack({(mine, generation): [10, 11, 12], (mine, generation - 1): [13, 14]})
    assert len(c._unacked_messages) == 0  # noqa: SLF001
    assert c._new_offset(mine) == 13  # noqa: SLF001 -- what Faust's commit timer commits; the old generation's are not acked
    c._committed_offset[mine] = 13  # noqa: SLF001 -- as the commit sets it
    batches.ack({(mine, generation): [12, 13]})  # 12 is below the committed offset: left out, as Consumer.ack does
    assert list(c._acked[mine]) == [13]  # noqa: SLF001
    assert c._new_offset(mine) == 14  # noqa: SLF001


def test_an_event_for_table_writes_carries_the_records_partition(consumer: tuple[Any, Any]) -> None:
    app, c = consumer
    batches = PartitionBatches(app, TOPIC)
    c._getmany = fetching(c, {})  # noqa: SLF001
    batches.install(c)
    event = batches.event_for(TP(TOPIC, 3), record(3, 42))
    assert (event.message.tp, event.message.partition, event.message.offset) == (TP(TOPIC, 3), 3, 42)
    assert event.message.timestamp == 1_700_000_000.0  # Faust's seconds
