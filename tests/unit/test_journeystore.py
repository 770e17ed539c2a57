"""The worker's state store: staged writes, applied offsets, and live stage counts."""

from __future__ import annotations

import pytest
from factories import Touchpoints

from processor.config.definitions import load_funnels
from processor.funnel.engine import Engine
from processor.funnel.touchpoint import from_dict
from processor.worker.state.entry import Layout, decode_entry, encode_entry
from processor.worker.state.stagecounts import StageCounts
from processor.worker.state.store import JourneyStore, stored_by_partition

FUNNELS = load_funnels(["quote-to-deal"])
LAYOUT = Layout(FUNNELS)


def engine_over(table: dict[bytes, bytes]) -> tuple[Engine, JourneyStore]:
    store = JourneyStore(table, LAYOUT)
    return Engine(FUNNELS, store), store


def test_states_reach_the_table_only_on_commit_with_the_applied_offset() -> None:
    table: dict[bytes, bytes] = {}
    engine, store = engine_over(table)
    stream = Touchpoints()
    engine.observe(from_dict(stream("quote_requested", "acme")))
    store.mark_applied("acme", 41)
    assert table == {} and store["acme"].positions["quote-to-deal"].stage == 0  # staged, readable
    changes = store.commit()
    assert [(before, after.positions["quote-to-deal"].stage) for before, after in changes] == [(None, 0)]
    offset, state = decode_entry(table[b"acme"])
    assert offset == 41 and state == store["acme"]
    assert store.applied("acme", 41) and store.applied("acme", 7) and not store.applied("acme", 42)
    assert not store.applied("nobody", 0)


def test_discarded_states_never_reach_the_table() -> None:
    table: dict[bytes, bytes] = {}
    engine, store = engine_over(table)
    engine.observe(from_dict(Touchpoints()("quote_requested", "acme")))
    store.mark_applied("acme", 3)
    store.discard()
    assert table == {} and "acme" not in store and not store.applied("acme", 3)


def test_a_state_written_without_a_new_offset_keeps_the_old_one() -> None:
    table: dict[bytes, bytes] = {}
    engine, store = engine_over(table)
    stream = Touchpoints()
    engine.observe(from_dict(stream("quote_requested", "acme")))
    store.mark_applied("acme", 5)
    store.commit()
    assert engine.clock is not None
    engine.advance_to(engine.clock + 8 * 86_400_000_000)  # the 7-day stall fires: a write with no touchpoint
    store.commit()
    offset, state = decode_entry(table[b"acme"])
    assert offset == 5 and state.positions["quote-to-deal"].dropped


def test_a_fresh_store_reads_what_another_wrote() -> None:
    table: dict[bytes, bytes] = {}
    engine, store = engine_over(table)
    engine.observe(from_dict(Touchpoints()("quote_requested", "acme")))
    store.commit()
    again = JourneyStore(table, LAYOUT)
    assert again["acme"] == store["acme"] and list(again) == ["acme"] and len(again) == 1
    with pytest.raises(TypeError):
        del again["acme"]


def test_entries_round_trip() -> None:
    engine, store = engine_over({})
    engine.observe(from_dict(Touchpoints()("quote_requested", "acme")))
    state = store["acme"]
    assert decode_entry(encode_entry(-1, state, LAYOUT)) == (-1, state)


def test_stage_counts_follow_commits_and_leave_with_their_partition() -> None:
    engine, store = engine_over({})
    counts = StageCounts(FUNNELS)
    stream = Touchpoints()
    for kind, contact in [("quote_requested", "a"), ("quote_requested", "b"), ("briefing_held", "a")]:
        engine.observe(from_dict(stream(kind, contact)))
        counts.apply(0, store.commit())
    engine.observe(from_dict(stream("quote_rejected", "b")))
    counts.apply(0, store.commit())
    table = counts.table()["quote-to-deal"]
    assert table["request"] == {"active": 0, "dropped": 1}
    assert table["briefing"] == {"active": 1, "dropped": 0}
    assert table["won"] == {"active": 0, "dropped": 0}
    counts.rebuild(3, stored_by_partition([(b"a", store.table[b"a"])], LAYOUT, lambda key: 3)[3].stages)
    assert counts.partitions() == [0, 3] and counts.table()["quote-to-deal"]["briefing"]["active"] == 2
    counts.drop(0)
    assert counts.table()["quote-to-deal"]["request"] == {"active": 0, "dropped": 0}
