"""Contact states over a bytes table, with writes held back until outputs are safe.

The engine reads and writes contact states through a mapping. In the worker that
mapping is this store over the Faust journeys table (contact id bytes -> encoded
state). Two things matter:

- Writes are *staged*: `commit()` writes them to the table only once the outputs
  they caused have been acknowledged by Kafka. A crash before that leaves the old
  state, so the touchpoint is processed again and its outputs are sent again with
  the same ids; a crash after it finds a duplicate whose outputs were delivered.
  Either way nothing is lost.
- Decoded states are cached, so a contact's state is decoded once, not per event.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from processor.funnel.codec import decode_state, encode_state
from processor.funnel.journey import ContactState


class JourneyStore(MutableMapping[str, ContactState]):
    def __init__(self, table: MutableMapping[bytes, bytes], cache_size: int = 200_000) -> None:
        self.table = table
        self.cache_size = cache_size
        self._cache: dict[str, ContactState] = {}
        self._staged: dict[str, ContactState] = {}

    def __getitem__(self, contact_id: str) -> ContactState:
        state = self._staged.get(contact_id) or self._cache.get(contact_id)
        if state is not None:
            return state
        raw = self.table.get(contact_id.encode())
        if raw is None:
            raise KeyError(contact_id)
        state = decode_state(raw)
        self._remember(contact_id, state)
        return state

    def __setitem__(self, contact_id: str, state: ContactState) -> None:
        self._staged[contact_id] = state

    def __delitem__(self, contact_id: str) -> None:
        raise TypeError("contact states are never deleted by the engine")

    def __iter__(self) -> Iterator[str]:
        for key in list(self.table.keys()):
            yield key.decode()

    def __len__(self) -> int:
        return len(self.table)

    @property
    def pending(self) -> int:
        return len(self._staged)

    def commit(self) -> list[tuple[ContactState | None, ContactState]]:
        """Write every staged state to the table (call once its outputs are acknowledged).

        Returns (state before, state after) for each contact written.
        """
        changes = []
        for contact_id, state in self._staged.items():
            before = self._cache.get(contact_id)
            if before is None:
                raw = self.table.get(contact_id.encode())
                before = None if raw is None else decode_state(raw)
            changes.append((before, state))
            self.table[contact_id.encode()] = encode_state(state)
            self._remember(contact_id, state)
        self._staged.clear()
        return changes

    def discard(self) -> None:
        """Drop staged states (their outputs were not delivered)."""
        self._staged.clear()

    def forget(self) -> None:
        """Empty the cache, e.g. when partitions move to another worker."""
        self._cache.clear()

    def _remember(self, contact_id: str, state: ContactState) -> None:
        if len(self._cache) >= self.cache_size:
            self._cache.clear()  # cheap and bounded; hot contacts come back on their next event
        self._cache[contact_id] = state
