"""What the journeys agent and the re-keyer share: a Faust stream taken in batches.

Each is a stage: it takes its stream's records one at a time under its lock (acks are
manual, `stream.noack()`), adds them to its `Batch`, and flushes the batch (its own
`flush`: wait for Kafka, then ack) when it holds FUNNEL_BATCH_SIZE records, is
FUNNEL_BATCH_WAIT old, or the stage has caught up with its input (no record waiting in
the stream, none on the broker behind the partitions read). A batch the stream leaves
waiting (Faust can clear the stream's buffer between two records while rebalancing or
stopping, then waits for every record to be acked) is flushed by a timer. With
exactly_once the stage joins Faust's commits (`WholeBatchCommits`), which flush it
first. A failure stops the worker with the batch unacked, for the next worker to process
again: Faust would restart the agent alone, in a process that has applied the batch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.types import TP, ChannelT

from processor.config.settings import Settings
from processor.worker.batch import Batch, behind_highwater
from processor.worker.outbox import FaustOutbox, KafkaOutbox
from processor.worker.transactions import WholeBatchCommits

log = logging.getLogger(__name__)


class Stage:
    """One batched stream stage; subclasses say what a record does (`take`), how a batch is
    made durable (`flush`) and what a failure drops (`discard`)."""

    doing = "processing"  # for the log line when the stage fails

    def __init__(self, app: faust.App, settings: Settings, outbox: KafkaOutbox | FaustOutbox) -> None:
        self.app, self.settings, self.outbox = app, settings, outbox
        self.batch = Batch()
        self._lock = asyncio.Lock()  # one record, or one flush, at a time
        self._acker: faust.StreamT[bytes] | None = None
        self.commits: WholeBatchCommits | None = None  # exactly_once: Faust commits between batches only
        self._waiting: Any = None  # records Faust has fetched and the stream not yet taken
        self._read_to: dict[TP, int] = {}  # partition -> the offset after the last record taken

    async def take(self, event: Any) -> None:
        """Process one record of the stream (and add it to the batch)."""
        raise NotImplementedError

    async def flush(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """A failure: what the batch holds beyond its records is dropped (it is processed again)."""

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        """The stream loop: the agent's body."""
        assert isinstance(stream, faust.Stream)
        records = self._acker = stream.noack()
        assert isinstance(records.channel, ChannelT)
        self._waiting = records.channel.queue
        await self.outbox.start()
        if isinstance(self.outbox, FaustOutbox) and self.commits is None:
            self.commits = WholeBatchCommits.of(self.app).join(self._lock, self.flush)
        helpers = [asyncio.ensure_future(self._flush_when_stale()), *self.started()]
        try:
            async for event in records.events():
                async with self._lock:
                    if not self.open():
                        continue  # exactly_once, transactions ended: delivered again after the rebalance
                    await self.take(event)
                    message = event.message
                    self._read_to[message.tp] = message.offset + 1
                    if self.flush_due():
                        await self.flush()
        except Exception as exc:
            await self.fail(exc)
            raise
        finally:
            for helper in helpers:
                helper.cancel()
            await self.outbox.stop()

    def started(self) -> list[asyncio.Future[Any]]:
        """Tasks of the stage's own that run beside the stream loop (cancelled with it)."""
        return []

    def open(self) -> bool:
        """Whether records may be taken: not between the end of Faust's transactions and the rebalance."""
        return self.commits is None or self.commits.open

    def flush_due(self) -> bool:
        batch = self.batch
        return (
            len(batch) >= self.settings.batch_size
            or batch.age() >= self.settings.batch_wait_s
            or self.nothing_waiting()
        )

    def nothing_waiting(self) -> bool:
        """No record fetched and not yet taken, none on the broker behind the partitions read."""
        if self._waiting is not None and not self._waiting.empty():
            return False
        return not behind_highwater(self.app.consumer, self._read_to)

    async def _flush_when_stale(self) -> None:
        wait = self.settings.batch_wait_s
        while True:
            await asyncio.sleep(wait)
            if self.batch.age() >= wait:
                async with self._lock:
                    try:
                        await self.flush()
                    except Exception as exc:
                        await self.fail(exc)
                        return

    async def fail(self, exc: BaseException) -> None:
        """Stop the worker, leaving the batch unwritten and unacked for a new one to process again
        (dropping its records, unacked, also lets Faust's shutdown stop waiting for them)."""
        # The exception's type only: a message may quote a record (the logs hold no contact id or payload).
        log.error(
            "%s failed (%s): stopping; the records since the last commit will be read again",
            self.doing,
            type(exc).__name__,
        )
        self.discard()
        self.batch.clear()
        await self.app.crash(exc)

    def rebalanced(self) -> None:
        self._read_to.clear()
