"""exactly_once support (processor/worker/transactions.py, processor/outbox.FaustOutbox), against stand-ins,
and the faust-streaming internals it leans on: an upgrade that moves them fails here, loudly."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer, TopicPartitionGroup, TransactionManager
from faust.transport.drivers.aiokafka import Producer
from faust.types import TP

from processor.worker.outbox import FaustOutbox
from processor.worker.transactions import CLEAN_MARK, LocalTables, WholeBatchCommits


class FakeConsumer:
    def __init__(self, steps: list[str]) -> None:
        self.steps = steps

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        self.steps.append(f"commit(new={start_new_transaction})")
        return True


def test_a_commit_flushes_every_stages_batch_first_under_all_their_locks() -> None:
    steps: list[str] = []
    agent_lock, rekeyer_lock = asyncio.Lock(), asyncio.Lock()
    consumer = FakeConsumer(steps)
    app = SimpleNamespace(consumer=consumer)

    def flusher(name: str) -> Any:
        async def flush() -> None:
            assert agent_lock.locked() and rekeyer_lock.locked()  # neither stage is mid-batch
            steps.append(f"flush {name}")

        return flush

    commits = WholeBatchCommits.of(app).join(rekeyer_lock, flusher("rekeyer"))
    assert WholeBatchCommits.of(app) is commits  # once per consumer
    commits.join(agent_lock, flusher("agent"))

    async def run() -> None:
        assert await consumer.commit() is True  # what Faust calls: now the wrapper
        assert commits.open and not commits.ended
        assert not agent_lock.locked() and not rekeyer_lock.locked()
        await consumer.commit(start_new_transaction=False)  # a rebalance or a stop ends the transactions

    asyncio.run(run())
    one_commit = ["flush rekeyer", "flush agent"]
    assert steps == [*one_commit, "commit(new=True)", *one_commit, "commit(new=False)"]
    assert not commits.open and commits.ended
    commits.reopen()
    assert commits.open


def test_a_commit_waits_for_a_stage_in_the_middle_of_its_batch() -> None:
    steps: list[str] = []
    lock = asyncio.Lock()
    consumer = FakeConsumer(steps)

    async def flush() -> None:
        steps.append("flush")

    commits = WholeBatchCommits.of(SimpleNamespace(consumer=consumer)).join(lock, flush)

    async def run() -> None:
        async with lock:  # a stage is taking a record
            commit = asyncio.ensure_future(consumer.commit())
            await asyncio.sleep(0.01)
            steps.append("record taken")
        assert await commit is True

    asyncio.run(run())
    assert steps == ["record taken", "flush", "commit(new=True)"]
    assert commits.open


def test_a_commit_that_raises_does_not_count_as_ended() -> None:
    class Failing(FakeConsumer):
        async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
            raise RuntimeError("Not in the middle of a transaction")

    async def flush() -> None:
        pass

    commits = WholeBatchCommits(Failing([])).join(asyncio.Lock(), flush)

    async def run() -> None:
        with contextlib.suppress(RuntimeError):
            await commits.commit(start_new_transaction=False)

    asyncio.run(run())
    assert not commits.ended


def test_local_tables_are_kept_after_a_clean_stop_and_discarded_after_a_crash(tmp_path: Path) -> None:
    tabledir = tmp_path / "v1" / "tables"
    (tabledir / "journeys-0.db").mkdir(parents=True)
    (tabledir / "journeys-0.db" / "000001.sst").write_bytes(b"state")
    tables = LocalTables(tabledir)

    tables.stopped_cleanly()
    assert (tmp_path / "v1" / CLEAN_MARK).is_file()
    assert tables.take_over() is False  # kept
    assert (tabledir / "journeys-0.db" / "000001.sst").is_file()
    assert not (tmp_path / "v1" / CLEAN_MARK).exists()  # running now: a crash leaves no mark

    assert tables.take_over() is True  # no mark: the last run crashed
    assert not tabledir.exists()
    assert tables.take_over() is False  # nothing left to discard


def test_outputs_go_to_the_producer_faust_commits_the_input_partition_with() -> None:
    """FaustOutbox's transactional id for input partition p is the one Faust's TransactionManager
    gives the touchpoints partition p, whose offsets it commits in that producer's transaction."""
    groups = {"touchpoints": 1, "funnel-processor-ticks": 1, "funnel.transitions": 7}
    assignor = SimpleNamespace(group_for_topic=groups.__getitem__, is_standby=lambda tp: False)
    app = SimpleNamespace(conf=SimpleNamespace(id="funnel-processor"), assignor=assignor)
    manager: Any = SimpleNamespace(app=app, transactional_id_format=TransactionManager.transactional_id_format)
    # Faust's own private mapping from partitions to transactional ids, the one the outbox must match.
    manager._tps_to_active_tpgs = lambda tps: TransactionManager._tps_to_active_tpgs(manager, tps)  # noqa: SLF001
    outbox = FaustOutbox(app, "touchpoints")  # type: ignore[arg-type]
    for partition in range(4):
        faust_ids = TransactionManager._tps_to_transactional_ids(manager, {TP("touchpoints", partition)})  # noqa: SLF001
        assert faust_ids == {outbox.transactional_id(partition)} == {f"funnel-processor-1-{partition}"}
    # Faust's own send picks the producer by the destination topic's group: not the input's.
    assert TransactionManager._tps_to_transactional_ids(manager, {TP("funnel.transitions", 2)}) != {  # noqa: SLF001
        outbox.transactional_id(2)
    }


def test_the_faust_internals_exactly_once_leans_on_are_there() -> None:
    assert TopicPartitionGroup._fields == ("topic", "partition", "group")
    send = inspect.signature(Producer.send)
    assert list(send.parameters)[1:7] == ["topic", "key", "value", "partition", "timestamp", "headers"]
    assert "transactional_id" in send.parameters
    assert inspect.iscoroutinefunction(Producer.flush)
    commit = inspect.signature(Consumer.commit)
    assert list(commit.parameters) == ["self", "topics", "start_new_transaction"]
    # Private on purpose: the worker calls it (README Design), so an upgrade that moves it fails here.
    add_gap = inspect.signature(Consumer._add_gap)  # noqa: SLF001
    assert list(add_gap.parameters) == ["self", "tp", "offset_from", "offset_to"]
    # _committed_offset: the offset Faust last committed per partition, a dict set in __init__.
    assert "self._committed_offset = defaultdict(lambda: None)" in inspect.getsource(Consumer.__init__)
    # The commit that ends the transactions at a rebalance or a stop.
    assert "self.commit(start_new_transaction=False)" in inspect.getsource(Consumer.commit_and_end_transactions)
