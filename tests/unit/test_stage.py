"""The stage's partition-list loop (processor/worker/stage.py) on a real faust-streaming
consumer (built, never started): records in order, a flush at FUNNEL_BATCH_SIZE, what a
rebalance leaves unacked, and the open batch Faust's rebalance waits for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from processor.config.settings import Settings
from processor.worker.patches.partitionbatches import Taken
from processor.worker.stage import Stage

TOPIC = "touchpoints"


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(TOPIC, 0, offset, 1_700_000_000_000, 0, b"c", b"{}", None, 1, 2, ())


class Recording(Stage):
    """A stage that records what it takes and what each flush acks."""

    def __init__(self, app: Any, settings: Settings) -> None:
        super().__init__(app, settings, outbox=None, topic=TOPIC)  # type: ignore[arg-type]  # never sent to
        self.taken: list[int] = []
        self.flushed: list[list[int]] = []
        self.stop_after: int | None = None

    async def list_taken(self, taken: Taken) -> str:
        return "context"

    async def take_record(self, record: Any, context: Any) -> None:
        assert context == "context"
        self.taken.append(record.offset)
        if self.stop_after == record.offset:
            self.app.consumer.stop_flow()  # a rebalance begins in the middle of the list

    async def flush(self) -> None:
        if not self.batch:
            return
        self.flushed.append([o for offsets in self.batch.taken.values() for o in offsets])
        self.batches.ack(self.batch.taken)
        self.batch.clear()

    def nothing_waiting(self) -> bool:
        return False  # a backlog: only size and age flush


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Recording]:
    settings = Settings(store="memory", data_dir=tmp_path, batch_size=3, batch_wait_s=10)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = faust.App("stage-test", broker="kafka://127.0.0.1:9", store="memory://", autodiscover=False)
    consumer: Any = app.consumer

    async def nothing(active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        return {}

    consumer._getmany = nothing  # noqa: SLF001 -- never fetches
    recording = Recording(app, settings)
    recording.batches.install(consumer)
    try:
        yield recording
    finally:
        consumer._thread.thread_loop.close()  # noqa: SLF001 -- never started
        asyncio.set_event_loop(None)
        loop.close()


def run(stage: Recording, taken: Taken) -> None:
    asyncio.get_event_loop().run_until_complete(stage.on_records(taken))


def test_a_list_is_taken_in_order_and_flushed_every_batch_size_records(stage: Recording) -> None:
    consumer: Any = stage.app.consumer
    tp = TP(TOPIC, 0)
    run(stage, Taken(tp, [record(o) for o in range(10, 17)], stage.app.consumer_generation_id))
    assert stage.taken == list(range(10, 17))
    assert stage.flushed == [[10, 11, 12], [13, 14, 15]]
    assert len(stage.batch) == 1  # 16 waits for more, or for its age
    assert len(consumer._unacked_messages) == 1  # noqa: SLF001 -- a rebalance waits for it
    assert consumer._new_offset(tp) == 16  # noqa: SLF001 -- Faust commits what was flushed
    asyncio.get_event_loop().run_until_complete(stage.flush())
    assert len(consumer._unacked_messages) == 0  # noqa: SLF001


def test_a_rebalance_in_the_middle_of_a_list_leaves_the_rest_unacked(stage: Recording) -> None:
    consumer: Any = stage.app.consumer
    tp = TP(TOPIC, 0)
    stage.stop_after = 4
    run(stage, Taken(tp, [record(o) for o in range(0, 9)], stage.app.consumer_generation_id))
    assert stage.taken == [0, 1, 2, 3, 4]  # 5..8 are read again from the committed offset
    asyncio.get_event_loop().run_until_complete(stage.flush())
    assert consumer._new_offset(tp) == 5  # noqa: SLF001


def test_a_list_of_an_earlier_generation_is_not_taken(stage: Recording) -> None:
    consumer: Any = stage.app.consumer
    run(stage, Taken(TP(TOPIC, 0), [record(0)], stage.app.consumer_generation_id - 1))
    assert stage.taken == []
    assert len(consumer._unacked_messages) == 0  # noqa: SLF001
