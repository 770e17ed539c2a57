"""One partition of a Faust table, whose writes reach its changelog in record batches.

A Faust table write (`table[key] = value`) stores the value and sends one changelog
record through Faust's producer buffer: a future, callbacks and sensor calls per
write. Measured on the worker, that was its largest cost per touchpoint (about
190 µs of CPU per touchpoint on the 2-core project machine, most of the worker's
remaining time after batching its outputs).

`BatchedTable` writes the store exactly as Faust does (the same bytes, under the
same key, in the same RocksDB partition or memory dict) and appends the same
changelog record (same key, value and partition) to the outbox, which sends it
in one record batch per changelog partition. Once the outbox reports them
delivered, `persisted()` records the changelog offset reached, as Faust's own
write callback does, so a RocksDB store recovers from there after a restart.
Reads, iteration and recovery stay Faust's.

Faust's RocksDB store writes to the partition of the event being processed, so
writes must happen under an event of this partition (see `processor.worker.batch`).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, Protocol

from faust.types import TP


class Appender(Protocol):
    def append(self, topic: str, partition: int, key: bytes, value: bytes) -> None: ...


class BatchedTable(MutableMapping[bytes, bytes]):
    def __init__(self, table: Any, partition: int, outbox: Appender) -> None:
        self.table = table  # a faust Table with bytes keys and values
        self.partition = partition
        self.outbox = outbox
        self.changelog = table.changelog_topic.get_topic_name()

    def __getitem__(self, key: bytes) -> bytes:
        # The store itself: Faust's table would look the key up twice and call its sensors.
        value = self.table.data.get(key)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.table.data[key] = value
        self.outbox.append(self.changelog, self.partition, key, value)

    def __delitem__(self, key: bytes) -> None:
        raise TypeError("entries are never deleted")

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)

    def persisted(self, last_offsets: dict[tuple[str, int], int]) -> None:
        """Record the changelog offset the outbox delivered for this partition, if any."""
        offset = last_offsets.get((self.changelog, self.partition))
        if offset is not None:
            self.table.data.set_persisted_offset(TP(self.changelog, self.partition), offset)
