"""The idle clock: ticks that let a quiet partition's clock follow the wall clock.

An internal ticks topic, co-partitioned with the touchpoints, carries a tick per owned
partition every FUNNEL_TICK_INTERVAL (`send`). A tick reaches the journeys agent through
its stream, because table writes are only allowed inside stream iteration, from an event
of the partition the key lives in; there (`on_tick`) it lets a partition that is caught
up and has been quiet for FUNNEL_IDLE_AFTER run its clock on with the wall clock, so its
stall deadlines still fire, and saves the clock to the clocks table.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
from faust.types import TP

from processor.config.settings import Settings
from processor.funnel.outputs import Output
from processor.worker.metrics import FunnelMetrics
from processor.worker.patches.skippedrecords import skip_in_commits
from processor.worker.task import PartitionClock, Tasks

_US = 1_000_000


class IdleClock:
    """The ticks of one journeys agent: sent by a timer, taken by its stream."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        tasks: Tasks,
        clocks: Any,
        metrics: FunnelMetrics,
        emit: Callable[[int, list[Output]], Awaitable[None]],
    ) -> None:
        self.app, self.settings, self.tasks, self.clocks, self.metrics, self.emit = (
            app,
            settings,
            tasks,
            clocks,
            metrics,
            emit,
        )
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.topic = app.topic(settings.topic_ticks, partitions=settings.partitions, **raw)
        self.input_topic = ""  # set by the agent: the touchpoints topic the ticks follow
        self.upstream: Any = None  # the re-keying step, if any: its backlog holds the clock back
        self.outside_transactions = False  # exactly_once: ticks are sent by the plain producer
        self._seen: set[int] = set()  # ticks partitions with a record since the last rebalance

    async def send(self) -> None:
        """A tick to every input partition this worker owns; the event-time lag gauge."""
        clocks = [task.clock for task in self.tasks.values()]
        lags = [time.time() - c.latest / _US for c in clocks if c.latest is not None]
        self.metrics.event_time_lag.set(max(lags, default=0.0))
        now = orjson.dumps(time.time())
        # With exactly_once, ticks go outside the transactions: a tick only nudges a clock, and
        # transaction markers in the ticks topic would leave gaps in its offsets that Faust's
        # commit bookkeeping trips over (processor/worker/transactions.py).
        for tp in self.app.assignor.assigned_actives():
            if tp.topic != self.input_topic:
                continue
            if self.outside_transactions:
                await self.app.producer.send(self.settings.topic_ticks, None, now, tp.partition, None, None)
            else:
                await self.topic.send(value=now, partition=tp.partition)

    async def on_tick(self, message: Any) -> None:
        await self._first_tick(message)
        partition = message.partition
        task = self.tasks.for_partition(partition)
        engine, clock = task.engine, task.clock
        now = time.time()
        idle = clock.latest is not None and now - clock.last_wall >= self.settings.idle_after_s
        if idle and clock.latest is not None and await self._caught_up(partition, clock):
            await self.emit(partition, engine.advance_to(clock.latest + int((now - clock.wall_at_latest) * _US)))
        if clock.latest is not None and clock.saved != (clock.latest, clock.wall_at_latest):
            clock.saved = (clock.latest, clock.wall_at_latest)
            self.clocks[b"%d" % partition] = orjson.dumps(clock.saved)

    async def _first_tick(self, message: Any) -> None:
        """A ticks partition's first record since the rebalance may come after offsets its consumer
        never delivers (the markers and aborted ticks of the worker's own transactions, with
        exactly_once); a tick only carries the wall clock, so nothing is lost by skipping them."""
        if message.partition in self._seen:
            return
        self._seen.add(message.partition)
        consumer: Any = self.app.consumer
        committed = consumer._committed_offset.get(message.tp)  # noqa: SLF001 -- faust internal, README Design
        if committed is not None:
            await skip_in_commits(consumer, message.tp, committed, message.offset)

    async def _caught_up(self, partition: int, clock: PartitionClock) -> bool:
        """No touchpoint waiting in this partition (else the clock must not run ahead of it), nor, on a
        re-keyed input, in the source partitions this worker re-keys."""
        if self.upstream is not None and not self.upstream.caught_up():
            return False
        tp = TP(self.input_topic, partition)
        try:
            highwater = self.app.consumer.highwater(tp)
            # Nothing processed since this worker took the partition: where it reads next.
            position = clock.next_offset if clock.next_offset is not None else await self.app.consumer.position(tp)
        except (KeyError, AssertionError, TypeError, ValueError):
            return False
        return highwater is not None and position is not None and highwater <= position

    def rebalanced(self) -> None:
        self._seen.clear()
