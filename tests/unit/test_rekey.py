"""The pieces of the re-keying path that need no broker: where a re-keyed record came from, the marks
that keep a copy from being applied twice, and the outbox that keeps a partition's records in order.

The whole path, crash included, runs against a broker in tests/integration/test_worker_input_formats.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from types import SimpleNamespace
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord
from fakes import FakeProducer, outbox_over

from processor.funnel.formats import as_touchpoint
from processor.funnel.touchpoint import from_dict
from processor.worker.rekey import timestamp_ms
from processor.worker.state.sourcemarks import SourceMarks, origin, source_headers


def test_a_rekeyed_record_names_its_source_in_a_header() -> None:
    record = SimpleNamespace(headers=[("other", b"x"), *source_headers("events.web-v2", 3, 12_345)])
    assert origin(record) == ("events.web-v2:3", 12_345)
    assert origin(SimpleNamespace(headers=())) is None
    assert origin(SimpleNamespace(headers=None)) is None


def test_marks_tell_a_copy_from_a_record_not_yet_applied_and_survive_in_the_table() -> None:
    table: dict[bytes, bytes] = {}
    marks = SourceMarks(table)
    marks.load(2)
    assert not marks.applied(2, ("in:0", 0))
    marks.note(2, ("in:0", 7))
    marks.note(2, ("in:1", 3))
    marks.note(2, ("in:0", 5))  # a copy noted again moves nothing back
    assert marks.applied(2, ("in:0", 7)) and marks.applied(2, ("in:0", 1))
    assert not marks.applied(2, ("in:0", 8)) and not marks.applied(2, ("in:1", 4)) and not marks.applied(2, ("in:2", 0))
    assert table == {}  # nothing written until the batch's states are
    marks.save(2)
    assert orjson.loads(table[b"sources:2"]) == {"in:0": 7, "in:1": 3}
    table[b"sources:2"] = b"changed elsewhere"
    marks.save(2)  # unchanged since the last save: not written again
    assert table[b"sources:2"] == b"changed elsewhere"
    table[b"sources:2"] = orjson.dumps({"in:0": 7})
    again = SourceMarks(table)  # another worker taking the partition on
    again.load(2)
    assert again.applied(2, ("in:0", 7)) and not again.applied(2, ("in:0", 8))


class Acknowledgement:
    """An acknowledgement that records whether anyone waited for it."""

    def __init__(self) -> None:
        self.awaited = False

    def __await__(self) -> Generator[Any, None, Any]:
        self.awaited = True
        return SimpleNamespace(offset=0)
        yield  # a generator, as __await__ must be


class WatchedProducer(FakeProducer):
    """Records, for each batch sent, how many batches of its partition were sent and not yet awaited."""

    def __init__(self) -> None:
        super().__init__({"rekeyed": 2}, batch_bytes=1024)
        self.in_flight_at_send: list[int] = []
        self.acks: dict[tuple[str, int], list[Acknowledgement]] = {}

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        await super().send_batch(batch, topic, partition=partition)
        slot = self.acks.setdefault((topic, partition), [])
        self.in_flight_at_send.append(sum(not a.awaited for a in slot))
        slot.append(Acknowledgement())
        return slot[-1]


def test_put_in_order_never_has_two_batches_of_a_partition_in_flight() -> None:
    """A later batch sent while an earlier one is unacknowledged could land while the earlier one fails:
    a gap that the marks would then hide. So a full batch first waits for everything before it."""
    producer = WatchedProducer()
    outbox = outbox_over(producer, source_partitions=2)

    async def run() -> None:
        for i in range(60):  # about four 200-byte records fill a 1 KiB batch
            headers = source_headers("in", 0, i)
            await outbox.put_in_order("rekeyed", i % 2, b"c%d" % i, b"x" * 200, 1_700_000_000_000 + i, headers)
        await outbox.delivered()

    asyncio.run(run())
    assert sum(n for _, _, n in producer.sent) == 60
    assert len(producer.sent) > 10 and producer.in_flight_at_send == [0] * len(producer.sent)


def test_a_touchpoint_written_out_reads_back_the_same() -> None:
    for doc in (
        {"event_id": "e1", "contact_id": "c1", "type": "purchase", "occurred_at": "2026-01-10T09:30:00.250+01:00"},
        {"event_id": "e2", "contact_id": "c2", "type": "page_view", "occurred_at": "2026-01-10T09:30:00Z"}
        | {"channel": "email", "campaign": "spring", "properties": {"path": "/pricing"}},
    ):
        tp = from_dict(doc)
        assert from_dict(orjson.loads(orjson.dumps(as_touchpoint(tp)))) == tp


def test_a_records_timestamp_is_kept_in_milliseconds_from_faust_or_aiokafka() -> None:
    assert timestamp_ms(SimpleNamespace(timestamp=1_767_225_600.123)) == 1_767_225_600_123  # faust: seconds
    record = ConsumerRecord("t", 0, 5, 1_767_225_600_123, 0, b"k", b"v", None, 1, 1, ())
    assert timestamp_ms(record) == 1_767_225_600_123  # aiokafka: milliseconds
    assert timestamp_ms(SimpleNamespace(timestamp=None)) is None
    assert timestamp_ms(SimpleNamespace(timestamp=-1)) is None
