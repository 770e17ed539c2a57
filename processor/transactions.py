"""exactly_once: what Faust's transactions need from the worker to hold on Kafka.

With FUNNEL_PROCESSING_GUARANTEE=exactly_once, each input partition's outputs, table
changelog records and input offsets are written by that partition's transactional
producer (`processor.outbox.FaustOutbox`) and committed together by Faust. Two more
things keep that promise; both were found by the test that kills a worker on Kafka
(tests/integration/test_worker_exactly_once.py):

- **Whole batches per transaction** (`WholeBatchCommits`). Faust commits on its own
  timer, at rebalances and at stop, with the offsets of the records acked so far. The
  agent acks a batch only after its outputs are delivered and its states written; a
  commit in the middle of a batch would commit outputs whose input offsets it does not
  commit, and after a crash those records would be processed, and their outputs
  committed, again. So every commit first takes the agent's lock and flushes its batch.
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
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CLEAN_MARK = "funnel-committed-at-stop"


class WholeBatchCommits:
    """Faust's consumer commits only between the agent's batches (see the module's docstring).

    A commit that ends the transactions (Faust's last one before a rebalance or a stop)
    also closes the agent: until Faust has begun new transactions (`reopen`, on the next
    assignment), a record the agent takes would be sent outside any transaction, so it is
    left unacked instead, and Faust delivers it again from the committed offset.
    """

    def __init__(self, consumer: Any, lock: asyncio.Lock, flush: Callable[[], Awaitable[None]]) -> None:
        self.consumer = consumer
        self.lock = lock
        self.flush = flush
        self.open = True  # Faust's transactions are open for the agent's records
        self.ended = False  # the last commit ended the transactions and did not raise
        self._commit = consumer.commit

    def install(self) -> None:
        """Route the consumer's commits (its timer, rebalances, stop) through `commit` below."""
        if getattr(self.consumer, "_funnel_whole_batches", None) is None:
            self.consumer.commit = self.commit  # an instance attribute: faust calls self.commit()
            self.consumer._funnel_whole_batches = self

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        async with self.lock:
            self.ended = False
            await self.flush()
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
