"""Where a re-keyed touchpoint came from, so that a copy produced again is never applied twice.

The re-keying step (processor/worker/rekey.py) acks a source record only after Kafka has its
re-keyed copy. A crash in between makes the restarted step produce the copy again:
the re-keyed topic then holds a record twice, at two offsets. The journeys agent's own
check (each contact's last applied offset, processor/worker/state/store.py) cannot see that,
and the dedup horizon may not either: by then the contact may be days of event time
further on. So each re-keyed record names its source in a header, `topic:partition:offset`,
and the journeys agent keeps, per re-keyed partition, the highest source offset it has
applied from each source partition. A record at or below that mark is a copy: it only
moves the clock, as a record delivered again after a crash does.

That is exact because the re-keying step sends a partition's records in source order
with no gap (`KafkaOutbox.put_in_order`: never two batches of a partition in flight), so
within a re-keyed partition the records of one source partition come in offset order,
copies aside. A copy's original always comes first.

The marks of a partition are one entry of the clocks table (key `sources:<partition>`),
written after the batch's states and before its input is acked (processor/worker/agent.py,
`flush`): after a crash they never claim more than the stored states hold.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

HEADER = "funnel-source"  # on a re-keyed record: b"<topic>:<partition>:<offset>" of the record it came from
Origin = tuple[str, int]  # ("<topic>:<partition>", offset)


def source_headers(topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    return [(HEADER, b"%s:%d:%d" % (topic.encode(), partition, offset))]


def origin(message: Any) -> Origin | None:
    """The source of a re-keyed record, from its header; None for a record without one."""
    for name, value in message.headers or ():
        if name == HEADER and value:
            where, _, offset = value.decode().rpartition(":")
            return where, int(offset)
    return None


class SourceMarks:
    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self.table = table  # the clocks table
        self._marks: dict[int, dict[str, int]] = {}  # re-keyed partition -> source partition -> offset applied
        self._changed: set[int] = set()

    @staticmethod
    def key(partition: int) -> bytes:
        return b"sources:%d" % partition

    def load(self, partition: int) -> None:
        """Read a partition's marks when this worker takes it on."""
        raw = self.table.get(self.key(partition))
        self._marks[partition] = {} if raw is None else orjson.loads(raw)
        self._changed.discard(partition)

    def applied(self, partition: int, source: Origin) -> bool:
        where, offset = source
        return offset <= self._marks[partition].get(where, -1)

    def note(self, partition: int, source: Origin) -> None:
        where, offset = source
        marks = self._marks[partition]
        if offset > marks.get(where, -1):
            marks[where] = offset
            self._changed.add(partition)

    def save(self, partition: int) -> None:
        """Write a partition's marks if they moved (under an event of that partition)."""
        if partition in self._changed:
            self.table[self.key(partition)] = orjson.dumps(self._marks[partition])
            self._changed.discard(partition)

    def drop(self, partition: int) -> None:
        self._marks.pop(partition, None)
        self._changed.discard(partition)


__all__ = ["HEADER", "Origin", "SourceMarks", "origin", "source_headers"]
