"""Contact states survive the trip to bytes and back, so a restored worker resumes exactly."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from factories import Touchpoints, replay
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.config.definitions import PRESETS, load_funnels
from processor.funnel.codec import StateDecodeError, decode_state, encode_state
from processor.funnel.engine import Engine
from processor.funnel.touchpoint import from_dict
from processor.worker.state.entry import Layout, encode_entry
from processor.worker.state.stagecounts import StageCounts
from processor.worker.state.store import JourneyStore, Stored, stored_by_partition

FUNNELS = load_funnels(PRESETS)
TYPES = sorted({t for f in FUNNELS for t in f.types} | {"email_opened"})


EVENTS = st.tuples(st.sampled_from(TYPES), st.sampled_from(["c1", "c2", "c3"]), st.integers(0, 90 * 86400))


@settings(max_examples=150, deadline=None)
@given(events=st.lists(EVENTS, min_size=1, max_size=40), cut=st.integers(0, 40), repeat=st.integers(0, 39))
def test_a_state_restored_from_bytes_behaves_like_the_original(
    events: list[tuple[str, str, int]], cut: int, repeat: int
) -> None:
    stream = Touchpoints()
    docs = [stream(kind, contact, after=timedelta(seconds=gap)) for kind, contact, gap in events]
    docs.append(docs[repeat % len(docs)])  # a duplicate, which the restored dedup memory must catch
    tps = [from_dict(doc) for doc in docs]
    cut = min(cut, len(tps))
    expected = replay(FUNNELS, tps, check=False).produced
    first = replay(FUNNELS, tps[:cut], check=False)
    got, restored = first.produced, first.engine
    for contact, state in list(restored.store.items()):  # as a worker restarting from the changelog
        restored.store[contact] = back = decode_state(encode_state(state))
        assert back == state
    restored.schedule(list(restored.store))
    got += replay(FUNNELS, tps[cut:], engine=restored, check=False).produced
    assert orjson.dumps(got) == orjson.dumps(expected)


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(EVENTS, min_size=1, max_size=40),
    cut=st.integers(0, 40),
    written_for_others=st.booleans(),
)
def test_a_worker_restored_from_entry_headers_behaves_like_the_original(
    events: list[tuple[str, str, int]], cut: int, written_for_others: bool
) -> None:
    """Timers and stage counts rebuilt from entry headers alone (or, for entries written
    under other funnel definitions, from their states) resume exactly."""
    stream = Touchpoints()
    tps = [from_dict(stream(kind, contact, after=timedelta(seconds=gap))) for kind, contact, gap in events]
    cut = min(cut, len(tps))
    expected = replay(FUNNELS, tps, check=False).produced
    first = replay(FUNNELS, tps[:cut], check=False)
    got, before = first.produced, first.engine
    writer = Layout(FUNNELS[::-1] if written_for_others else FUNNELS)
    table = {contact.encode(): encode_entry(-1, state, writer) for contact, state in before.store.items()}
    store = JourneyStore(table, Layout(FUNNELS))
    restored = Engine(FUNNELS, store)
    restored.clock, restored.latest = before.clock, before.latest
    stored = stored_by_partition(table.items(), Layout(FUNNELS), lambda key: 0).get(0, Stored.none())
    assert stored.contacts == len(before.store)
    restored.add_timers(stored.timers)
    counts, decoded = StageCounts(FUNNELS), StageCounts(FUNNELS)
    counts.rebuild(0, stored.stages)
    decoded.apply(0, [(None, state) for state in before.store.values()])
    assert counts.table() == decoded.table()
    got += replay(FUNNELS, tps[cut:], engine=restored, check=False).produced
    assert orjson.dumps(got) == orjson.dumps(expected)


@pytest.mark.parametrize("data", [b"", b"{}", b"[2]", b"[1, 2, 3]", b"\xff", b'[1, ["a"], [], 0, {}, [], [], {}]'])
def test_bytes_that_are_not_a_state_are_refused(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_state(data)
