"""exactly_once: what Faust's transactions need from the worker to hold on Kafka.

With FUNNEL_PROCESSING_GUARANTEE=exactly_once, each input partition's outputs, table
changelog records and input offsets are written by that partition's transactional
producer (`processor.worker.outbox.FaustOutbox`) and committed together by Faust. Two more
things keep that promise; both were found by the test that kills a worker on Kafka
(tests/integration/test_worker_exactly_once.py):

- **Whole batches per transaction** (`WholeBatchCommits`). Faust commits on its own
  timer, at rebalances and at stop, with the offsets of the records acked so far. The
  agent acks a batch only after its outputs are delivered and its states written; a
  commit in the middle of a batch would commit outputs whose input offsets it does not
  commit, and after a crash those records would be processed, and their outputs
  committed, again. So every commit first takes the agent's lock and flushes its batch;
  with a re-keyed input, the re-keying agent's too (its copies and its source offsets).
- **Local tables only after a clean stop** (`LocalTables`). RocksDB is written as the
  batch is flushed, before the transaction commits; a crash aborts the transaction but
  leaves those writes on disk, and the restarted worker would take them for applied
  (their outputs aborted, never to be sent again). So a worker that stopped cleanly
  marks its tables as committed; a worker that starts without that mark discards them
  and Faust rebuilds them from the changelogs, whose aborted records it does not read.
  Kafka Streams treats its state stores the same way under exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CLEAN_MARK = "funnel-committed-at-stop"


class WholeBatchCommits:
    """Faust's consumer commits only between batches (see the module's docstring).

    Each stage that sends in Faust's transactions (the journeys agent, and the re-keying
    agent when the input is re-keyed) joins with its lock and its flush; a commit takes
    every stage's lock, in the order they joined, and flushes each. A commit that ends the
    transactions (Faust's last one before a rebalance or a stop) also closes the stages:
    until Faust has begun new transactions (`reopen`, on the next assignment), a record a
    stage takes would be sent outside any transaction, so it is left unacked instead, and
    Faust delivers it again from the committed offset.
    """

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.stages: list[tuple[asyncio.Lock, Callable[[], Awaitable[None]]]] = []
        self.open = True  # Faust's transactions are open for the stages' records
        self.ended = False  # the last commit ended the transactions and did not raise
        self._commit = consumer.commit

    @classmethod
    def of(cls, app: Any) -> WholeBatchCommits:
        """The one instance for this app's consumer, its commits routed through it."""
        consumer = app.consumer
        found = getattr(consumer, "_funnel_whole_batches", None)
        if found is None:
            found = cls(consumer)
            consumer.commit = found.commit  # an instance attribute: faust calls self.commit()
            # Our own marker on faust's consumer: underscored so it reads as no faust attribute.
            consumer._funnel_whole_batches = found  # noqa: SLF001
        assert isinstance(found, WholeBatchCommits)
        return found

    def join(self, lock: asyncio.Lock, flush: Callable[[], Awaitable[None]]) -> WholeBatchCommits:
        """A stage whose batches a commit must not split: it holds `lock` while it takes a record."""
        self.stages.append((lock, flush))
        return self

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        async with contextlib.AsyncExitStack() as held:
            for lock, _ in self.stages:
                await held.enter_async_context(lock)
            self.ended = False
            for _, flush in self.stages:
                await flush()
            committed = bool(await self._commit(topics, start_new_transaction=start_new_transaction))
            if not start_new_transaction:
                self.open, self.ended = False, True
            return committed

    def reopen(self) -> None:
        """Faust has begun new transactions (it does before it signals an assignment)."""
        self.open = True


class LocalTables:
    """The mark that says a RocksDB table directory holds only committed writes."""

    def __init__(self, tabledir: Path) -> None:
        self.tabledir = tabledir
        self.mark = tabledir.parent / CLEAN_MARK

    def take_over(self) -> bool:
        """Before Faust opens the tables: keep them if the last run stopped cleanly, else discard
        them (Faust then rebuilds them from the changelogs). Returns whether they were discarded."""
        clean = self.mark.is_file()
        self.mark.unlink(missing_ok=True)  # a crash from here on leaves no mark
        if clean or not self.tabledir.is_dir() or not any(self.tabledir.iterdir()):
            return False
        log.warning(
            "exactly_once: the last run did not stop cleanly, so its local tables may hold writes of "
            "aborted transactions; discarding %s and rebuilding them from the changelogs",
            self.tabledir,
        )
        shutil.rmtree(self.tabledir)
        return True

    def stopped_cleanly(self) -> None:
        """After Faust committed the last transaction and closed the tables."""
        self.mark.parent.mkdir(parents=True, exist_ok=True)
        self.mark.write_text("the tables hold only writes of committed transactions\n")
