"""Contact states over a bytes table, with writes held back until outputs are safe.

The engine reads and writes contact states through a mapping. In the worker that
mapping is this store over the Faust journeys table (contact id bytes -> entry).
Three things matter:

- Writes are *staged*: `commit()` writes them to the table only once the outputs
  they caused have been acknowledged by Kafka. A crash before that leaves the old
  state, so the touchpoint is processed again and its outputs are sent again with
  the same ids; a crash after it finds the touchpoint already applied.
- Each entry records the input offset of the last touchpoint applied to the
  contact (a contact's touchpoints all sit in one partition). After a crash Kafka
  delivers again everything since the last committed offset, which may reach back
  further in event time than the dedup horizon; `applied(contact, offset)` tells the
  worker which of those it must not apply twice.
- Decoded entries are cached, so a contact's state is decoded once, not per event.
  The worker keeps one store per input partition (their writes must go out under
  an event of that partition), sharing one cache: a contact lives in one partition.

Entries are laid out by `processor.worker.state.entry`: a header (the offset, and the
next deadline and stages that a restart's rebuild reads without decoding the
state), then the state.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import NamedTuple

from processor.funnel.state import ContactState
from processor.worker.state.entry import Key, Layout, encode_entry

Entry = tuple[int, ContactState]  # (offset of the last touchpoint applied, state)


class Stored(NamedTuple):
    """What a partition's engine and stage counts start from after a restart or rebalance."""

    contacts: int
    timers: list[tuple[int, str]]  # (stall deadline, contact id) of the contacts that have one
    stages: Counter[Key]

    @classmethod
    def none(cls) -> Stored:
        return cls(0, [], Counter())


def stored_by_partition(
    entries: Iterable[tuple[bytes, bytes]], layout: Layout, partition_of: Callable[[bytes], int]
) -> dict[int, Stored]:
    """Per partition, its stored contacts' timers and stage counts, from one pass over the
    table's (key, entry) pairs that reads entry headers only: states stay undecoded (unless
    written for other funnels) until their contacts are touched."""
    timers: dict[int, list[tuple[int, str]]] = defaultdict(list)
    slots: dict[int, list[bytes]] = defaultdict(list)
    for key, raw in entries:
        partition = partition_of(key)
        due, held = layout.summary(raw)
        if due is not None:
            timers[partition].append((due, key.decode()))
        slots[partition].append(held)
    return {p: Stored(len(held), timers[p], layout.stage_counts(Counter(held))) for p, held in slots.items()}


class JourneyStore(MutableMapping[str, ContactState]):
    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        layout: Layout,
        cache_size: int = 200_000,
        cache: dict[str, Entry] | None = None,
    ) -> None:
        self.table = table
        self.layout = layout
        self.cache_size = cache_size
        self._cache: dict[str, Entry] = {} if cache is None else cache
        self._staged: dict[str, ContactState] = {}
        self._staged_offsets: dict[str, int] = {}

    def _entry(self, contact_id: str) -> Entry | None:
        entry = self._cache.get(contact_id)
        if entry is None:
            raw = self.table.get(contact_id.encode())
            if raw is None:
                return None
            entry = self.layout.read(raw)  # moved to the configured stages if written under others
            self._remember(contact_id, entry)
        return entry

    def __getitem__(self, contact_id: str) -> ContactState:
        state = self._staged.get(contact_id)
        if state is not None:
            return state
        entry = self._entry(contact_id)
        if entry is None:
            raise KeyError(contact_id)
        return entry[1]

    def __setitem__(self, contact_id: str, state: ContactState) -> None:
        self._staged[contact_id] = state

    def __delitem__(self, contact_id: str) -> None:
        raise TypeError("contact states are never deleted by the engine")

    def __iter__(self) -> Iterator[str]:
        for key in list(self.table.keys()):
            yield key.decode()

    def __len__(self) -> int:
        return len(self.table)

    def applied(self, contact_id: str, offset: int) -> bool:
        """Whether the touchpoint at this input offset was already applied to the contact."""
        entry = self._entry(contact_id)
        return entry is not None and offset <= entry[0]

    def mark_applied(self, contact_id: str, offset: int) -> None:
        """Record, with the contact's next commit, that the touchpoint at `offset` is applied."""
        self._staged_offsets[contact_id] = offset

    @property
    def staged(self) -> bool:
        """Whether states wait to be written."""
        return bool(self._staged)

    def commit(self) -> list[tuple[ContactState | None, ContactState]]:
        """Write every staged state to the table (call once its outputs are acknowledged).

        A contact changed several times since the last commit is written once, with its
        latest state. Returns (state before, state after) for each contact written.
        """
        changes = []
        for contact_id, state in self._staged.items():
            before = self._entry(contact_id)
            offset = self._staged_offsets.get(contact_id, -1 if before is None else before[0])
            changes.append((None if before is None else before[1], state))
            self.table[contact_id.encode()] = encode_entry(offset, state, self.layout)
            self._remember(contact_id, (offset, state))
        self._staged.clear()
        self._staged_offsets.clear()
        return changes

    def discard(self) -> None:
        """Drop staged states (their outputs were not delivered)."""
        self._staged.clear()
        self._staged_offsets.clear()

    def forget(self) -> None:
        """Empty the cache (shared by every store over it), e.g. when partitions move to another worker."""
        self._cache.clear()

    def _remember(self, contact_id: str, entry: Entry) -> None:
        if len(self._cache) >= self.cache_size:
            self._cache.clear()  # cheap and bounded; hot contacts come back on their next event
        self._cache[contact_id] = entry
