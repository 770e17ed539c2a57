"""Journeys entries: the header a restart reads instead of the state, and refused formats."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from factories import Touchpoints, replay

from processor.config.definitions import load_funnels
from processor.funnel.codec import encode_state
from processor.funnel.journey import next_deadline
from processor.funnel.state import ContactState
from processor.worker.state.entry import EntryFormatError, Layout, decode_entry, encode_entry, entry_summary
from processor.worker.state.stagecounts import StageCounts
from processor.worker.state.store import stored_by_partition

FUNNELS = load_funnels(["quote-to-deal", "customer-journey"])
LAYOUT = Layout(FUNNELS)


def states() -> dict[str, ContactState]:
    """a: stall pending in quote-to-deal; b: lost there (dropped, no deadline); c: won (terminal);
    none of them entered customer-journey."""
    stream = Touchpoints()
    kinds = [
        ("quote_requested", "a"),
        ("quote_requested", "b"),
        ("quote_rejected", "b"),
        ("quote_requested", "c"),
        ("quote_accepted", "c"),
    ]
    store = replay(FUNNELS, [stream(kind, contact) for kind, contact in kinds]).engine.store
    assert isinstance(store, dict)
    return store


def test_the_header_round_trips_offset_deadline_and_stages() -> None:
    counts = StageCounts(FUNNELS)
    for offset, (contact, state) in enumerate(states().items()):
        raw = encode_entry(offset * 1000 - 1, state, LAYOUT)
        assert decode_entry(raw) == (offset * 1000 - 1, state)
        due, slots = entry_summary(raw, LAYOUT)
        assert due == next_deadline(state, FUNNELS)
        assert LAYOUT.stage_keys(slots) == counts.keys(state), contact
    deadlines = {c: entry_summary(encode_entry(-1, s, LAYOUT), LAYOUT)[0] for c, s in states().items()}
    assert deadlines["a"] is not None and deadlines["b"] is None and deadlines["c"] is None
    assert LAYOUT.stage_keys(LAYOUT.slots(states()["b"])) == [("quote-to-deal", "request", True)]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x01" + bytes(40),  # no format has a marker byte 1
        struct.pack(">q", 41) + b"{}",  # an offset, then no state array
        b"\x00" * 8,  # an offset alone
        b"\x02\x00\x00",  # format 2, cut inside its header
    ],
)
def test_an_entry_in_another_format_is_refused_not_misread(raw: bytes) -> None:
    with pytest.raises(EntryFormatError, match="journeys entry"):
        decode_entry(raw)
    with pytest.raises(EntryFormatError, match="journeys entry"):
        entry_summary(raw, LAYOUT)


def test_a_format_1_entry_of_an_earlier_build_is_read_from_its_state() -> None:
    counts = StageCounts(FUNNELS)
    for offset, state in ((7, states()["a"]), (-1, states()["b"])):
        old = struct.pack(">q", offset) + encode_state(state)  # what earlier builds wrote
        assert decode_entry(old) == (offset, state)
        due, slots = entry_summary(old, LAYOUT)
        assert due == next_deadline(state, FUNNELS)
        assert LAYOUT.stage_keys(slots) == counts.keys(state)


def test_a_refusal_names_the_formats_read() -> None:
    with pytest.raises(EntryFormatError, match=r"first byte 1; this build reads format 2 \(a header\) and format 1"):
        decode_entry(b"\x01" + bytes(40))


def test_an_entry_written_for_other_funnels_is_summarised_from_its_state() -> None:
    changed = [dataclasses.replace(FUNNELS[0], stall_after=(3_600_000_000, None, None, None)), FUNNELS[1]]
    for other in (Layout(changed), Layout(FUNNELS[::-1]), Layout(FUNNELS[:1])):
        assert other.digest != LAYOUT.digest
        for state in states().values():
            raw = encode_entry(-1, state, other)
            assert entry_summary(raw, LAYOUT) == (next_deadline(state, FUNNELS), LAYOUT.slots(state))
            assert decode_entry(raw) == (-1, state)
    hour = Layout(changed)
    state = states()["a"]
    assert entry_summary(encode_entry(-1, state, LAYOUT), hour)[0] == state.positions["quote-to-deal"].entered_at + (
        3_600_000_000
    )


def test_a_scan_of_headers_gives_each_partitions_timers_and_counts() -> None:
    table = {c.encode(): encode_entry(-1, s, LAYOUT) for c, s in states().items()}
    partition = {b"a": 1, b"b": 1, b"c": 0}
    stored = stored_by_partition(table.items(), LAYOUT, partition.__getitem__)
    assert sorted(stored) == [0, 1] and stored[1].contacts == 2 and stored[0].contacts == 1
    assert stored[1].timers == [(next_deadline(states()["a"], FUNNELS), "a")] and stored[0].timers == []
    assert stored[0].stages == {("quote-to-deal", "won", False): 1}
    stages = stored[0].stages + stored[1].stages
    from_states = StageCounts(FUNNELS)
    from_states.apply(0, [(None, s) for s in states().values()])
    from_headers = StageCounts(FUNNELS)
    from_headers.rebuild(0, stages)
    assert from_headers.table() == from_states.table()
    assert from_headers.table()["quote-to-deal"]["request"] == {"active": 1, "dropped": 1}


def test_a_layout_refuses_funnels_its_header_cannot_hold() -> None:
    many = dataclasses.replace(FUNNELS[0], name="many", stages=tuple(f"s{i}" for i in range(40_000)))
    with pytest.raises(ValueError, match="stages"):
        Layout([many])
