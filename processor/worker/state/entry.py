"""One journeys table entry: a fixed-size header, then the contact's state.

A restarted worker rebuilds the timers and stage counts of every contact it holds
(a million, say) before it processes a touchpoint. Decoding every state for that
was most of the rebuild's time, so an entry starts with what the rebuild needs, at
fixed places, and the state behind it is decoded only when the contact is touched:

    format  1 byte    FORMAT; an entry in any other format is refused, never misread
    offset  8 bytes   input offset of the last touchpoint applied to the contact, -1: none
    layout  8 bytes   digest of the funnels the next two fields were computed for
    due     8 bytes   the state's next stall deadline (µs), NO_DEADLINE: none
    n       1 byte    funnels in that layout, then 2 bytes for each, in its order:
                      0 not entered, else (stage index + 1) * 2 + (1 if dropped there)
    state   the rest  `processor.funnel.codec`

Integers are big-endian. The deadline and the stage slots depend on the funnel
definitions (stall times, stage lists), so they are used only when the layout digest
is the running worker's; an entry written under other definitions is decoded in
full instead (the slow, always correct way), its positions moved by stage name to the
configured stages (`processor.funnel.migration`: the layout its digest names was
recorded when a worker started with it, `processor.worker.state.migrate`), and it is
rewritten in the current layout on its next change. The layout's slots cover the
configured funnels, then the dormant ones (recorded, no longer configured), whose
positions are kept as they are.

A stage slot's code, (stage index + 1) * 2 + dropped, is read and written here alone:
`Layout.slots` writes it, `Layout.stage_keys` reads it into the (funnel, stage name,
dropped) keys the stage counts count by (`processor.worker.state.stagecounts`).

Format 1, written by earlier builds, had no header: the 8-byte offset, then the state.
Its first byte is 0 or 255 (offsets run from -1 up) and its state starts with `[`;
such an entry is read like one of other definitions, so a store written by an earlier
build is taken over, not refused.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Sequence
from hashlib import blake2b

import orjson

from processor.funnel.codec import decode_state, encode_state, max_state_bytes
from processor.funnel.definition import Funnel
from processor.funnel.journey import next_deadline
from processor.funnel.migration import Plan, Shape, migrate
from processor.funnel.state import ContactState, Limits

log = logging.getLogger(__name__)

# (funnel, stage, dropped): what a contact counts under in the stage counts, one per funnel it is in.
Key = tuple[str, str, bool]

FORMAT = 2  # format 1 (before headers) started with the 8-byte offset: its first byte was 0 or 255
NO_DEADLINE = -(2**63)
_HEAD = struct.Struct(">Bq8sqB")  # format, offset, layout digest, due, n
_V1_OFFSET = struct.Struct(">q")  # all a format-1 entry had before its state
_SLOT_LIMIT = 2**15 - 1  # stage indexes a 2-byte slot holds


class EntryFormatError(ValueError):
    """Bytes in the journeys table that are not an entry this build can read."""


class ForeignLayout(EntryFormatError):
    """An entry written under funnel definitions recorded after this worker started: another
    worker runs changed definitions, and this one must not read (and rewrite) its journeys."""


def layout_digest(funnels: Sequence[Funnel], shapes: Sequence[Shape]) -> bytes:
    """The 8-byte digest entry headers carry: the funnels' stages and stall times, and, when the
    layout holds dormant funnels or renamed and removed stages, their shapes too (without those,
    the digest is the one earlier builds wrote, so their entries read fast)."""
    described: list[object] = [[f.name, list(f.stages), list(f.stall_after)] for f in funnels]
    if len(shapes) > len(funnels) or any(s.former or s.removed for s in shapes):
        described.append(["shapes", [s.document() for s in shapes]])
    return blake2b(orjson.dumps(described), digest_size=8).digest()


class Layout:
    """The funnels a worker runs, as entry headers record them: with a `Plan`
    (`processor.worker.state.migrate.prepare`), also how to read entries written under the
    definitions recorded before, and the dormant funnels' slots."""

    def __init__(self, funnels: Sequence[Funnel], plan: Plan | None = None) -> None:
        self.funnels = tuple(funnels)
        self.shapes = plan.shapes if plan is not None else tuple(Shape.of(f) for f in self.funnels)
        if len(self.shapes) > 255:
            raise ValueError(f"an entry header holds at most 255 funnels, got {len(self.shapes)}")
        for shape in self.shapes:
            if len(shape.stages) >= _SLOT_LIMIT:
                raise ValueError(f"funnel {shape.name!r}: an entry header holds fewer than {_SLOT_LIMIT} stages")
        self.digest = layout_digest(self.funnels, self.shapes)
        self.moves = {} if plan is None else plan.moves
        # With definitions recorded, an entry under any other digest was written by a worker that
        # started after this one with other definitions (ForeignLayout); without, it is read as is.
        self.recorded = None if plan is None or not plan.recorded else plan.recorded | {self.digest}
        self._names = tuple(s.name for s in self.shapes)
        self._slots = struct.Struct(f">{len(self.shapes)}H")
        self._header = struct.Struct(_HEAD.format + self._slots.format[1:])
        self._keys: dict[bytes, list[Key]] = {}

    @property
    def dormant(self) -> tuple[Shape, ...]:
        """The funnels recorded, no longer configured, whose positions entries keep."""
        return self.shapes[len(self.funnels) :]

    def _codes(self, state: ContactState) -> list[int]:
        positions = state.positions
        return [
            0 if (pos := positions.get(name)) is None else (pos.stage + 1) * 2 + pos.dropped for name in self._names
        ]

    def slots(self, state: ContactState) -> bytes:
        """The header's stage slots for a state."""
        return self._slots.pack(*self._codes(state))

    def header(self, offset: int, state: ContactState) -> bytes:
        due = next_deadline(state, self.funnels)
        due_field = NO_DEADLINE if due is None else due
        return self._header.pack(FORMAT, offset, self.digest, due_field, len(self._names), *self._codes(state))

    def max_entry_bytes(self, limits: Limits) -> int:
        """The most bytes an entry can take for these funnels: its header and the largest state."""
        dormant = [(shape.name, len(shape.stages)) for shape in self.dormant]
        return self._header.size + max_state_bytes(self.funnels, limits, dormant)

    def stage_keys(self, slots: bytes) -> list[Key]:
        """The (funnel, stage, dropped) keys `StageCounts` counts for a contact with these slots
        (dormant funnels' too: the stage counts show configured funnels only)."""
        keys = self._keys.get(slots)
        if keys is None:
            keys = []
            for shape, code in zip(self.shapes, self._slots.unpack(slots), strict=True):
                if code:
                    keys.append((shape.name, shape.stages[code // 2 - 1], bool(code % 2)))
            self._keys[slots] = keys
        return keys

    def keys(self, state: ContactState) -> list[Key]:
        """The stage keys of a state: what `stage_keys` gives for its slots, read off the
        positions directly (the stage counts ask this twice per contact written)."""
        positions = state.positions
        return [
            (shape.name, shape.stages[pos.stage], pos.dropped)
            for shape in self.shapes
            if (pos := positions.get(shape.name)) is not None
        ]

    def read(self, raw: bytes) -> tuple[int, ContactState]:
        """(input offset of the last touchpoint applied, state) of an entry in any layout, its
        positions moved to the configured stages when it was written under other definitions."""
        offset, digest, _, start = _head(raw)
        return offset, self._adopted(digest, raw, start)

    def summary(self, raw: bytes) -> tuple[int | None, bytes]:
        """(next deadline, stage slots in this layout) of an entry: read from its header when it
        was written in this layout, else worked out from its decoded (and migrated) state."""
        _, digest, due, start = _head(raw)
        if digest == self.digest:
            return (None if due == NO_DEADLINE else due), bytes(raw[_HEAD.size : start])
        state = self._adopted(digest, raw, start)
        return next_deadline(state, self.funnels), self.slots(state)

    def _adopted(self, digest: bytes, raw: bytes, start: int) -> ContactState:
        state = decode_state(raw[start:])
        if digest == self.digest:
            return state
        moved = self.moves.get(digest)
        if moved is not None:
            return migrate(state, moved)
        if self.recorded is not None and digest and digest not in self.recorded:
            message = (
                f"a journeys entry was written under funnel definitions (layout {digest.hex()}) recorded after "
                "this worker started: another worker runs changed funnels. This worker stops rather than run "
                "two definitions side by side; start every worker with the same definitions (README: Changing a funnel)"
            )
            log.error(message)
            raise ForeignLayout(message)
        return state  # this layout's own stages, or an entry from before definitions were recorded

    def stage_counts(self, slots: Counter[bytes]) -> Counter[Key]:
        """Contacts per (funnel, stage, dropped), from how many contacts have each slots value."""
        counts: Counter[Key] = Counter()
        for held, contacts in slots.items():
            for key in self.stage_keys(held):
                counts[key] += contacts
        return counts


def encode_entry(offset: int, state: ContactState, layout: Layout) -> bytes:
    return layout.header(offset, state) + encode_state(state)


def _head(raw: bytes) -> tuple[int, bytes, int, int]:
    """(offset, layout digest, due, where the state starts), or EntryFormatError."""
    if len(raw) > _V1_OFFSET.size and raw[0] in (0, 255) and raw[_V1_OFFSET.size] == ord("["):
        return _V1_OFFSET.unpack_from(raw)[0], b"", NO_DEADLINE, _V1_OFFSET.size  # format 1: no header
    if not raw or raw[0] != FORMAT:
        found = "empty" if not raw else f"first byte {raw[0]}"
        raise EntryFormatError(
            f"journeys entry: {found}; this build reads format {FORMAT} (a header) "
            "and format 1 (an offset, then a state)"
        )
    try:
        _, offset, digest, due, funnels = _HEAD.unpack_from(raw)
    except struct.error:
        raise EntryFormatError(f"journeys entry: {len(raw)} bytes, shorter than its header") from None
    return offset, digest, due, _HEAD.size + 2 * funnels


def decode_entry(raw: bytes) -> tuple[int, ContactState]:
    """(input offset of the last touchpoint applied, state) of an entry in any layout."""
    offset, _, _, start = _head(raw)
    return offset, decode_state(raw[start:])


def entry_summary(raw: bytes, layout: Layout) -> tuple[int | None, bytes]:
    """`Layout.summary`."""
    return layout.summary(raw)


def entry_head(raw: bytes) -> tuple[bytes, bytes]:
    """(layout digest, stage slots as written) of an entry, from its header alone; format 1: (b"", b"")."""
    _, digest, _, start = _head(raw)
    return digest, bytes(raw[_HEAD.size : start]) if digest else b""
