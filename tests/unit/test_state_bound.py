"""A contact's journeys entry has a stated upper bound (SPEC: Bounds on input; README: State).

Every string a state keeps has a maximum length since touchpoint schema 1-1-0, so the
entry (header and state, `processor.worker.state.entry`) has a maximum size for a set of
funnels: `Layout.max_entry_bytes`. The README states it for the four presets. Here the
engine is driven with the longest values allowed everywhere (longest ids and types,
channels and campaigns made of control characters, which JSON writes as 6-byte escapes;
a full recent list and a full dedup memory; every preset entered; counts at their caps;
the widest times) and the entry must stay under the bound, and come close to it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count, islice
from pathlib import Path
from typing import Any

from factories import DAY, MINUTE, Touchpoints, line, replay
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.config.definitions import PRESETS, load_funnels
from processor.funnel.journey import event_hash
from processor.funnel.state import RECENT, Limits
from processor.funnel.touchpoint import MAX_CAMPAIGN, MAX_CHANNEL, MAX_EVENT_ID, MAX_TYPE
from processor.worker.state.entry import Layout, decode_entry, encode_entry

ROOT = Path(__file__).resolve().parents[2]
FUNNELS = load_funnels(PRESETS)
LAYOUT = Layout(FUNNELS)
STATED = 17_167  # bytes: the README's bound for the four presets (Design: contact state)
WIDEST_OFFSET = 2**63 - 1
# Times with the most digits in µs (18 with the sign): before 1653, or after 5138.
LONG_AGO = datetime.fromisoformat("1500-03-01T00:00:00+00:00")


def widest_event_ids() -> list[str]:
    """128-character event ids whose 64-bit hash has 20 digits, the most it can have."""
    ids = (f"{n:0{MAX_EVENT_ID}d}" for n in count())
    return list(islice((event_id for event_id in ids if event_hash(event_id) >= 10**19), 64))


def longest_journey() -> list[dict[str, object]]:
    odd = "\x01"  # a control character: 6 bytes in JSON
    longest: dict[str, Any] = {"channel": odd * MAX_CHANNEL, "campaign": odd * MAX_CAMPAIGN}
    noise = odd * MAX_TYPE
    make = Touchpoints(start=LONG_AGO, gap=MINUTE)
    contact = "c" * 128
    kinds = [noise, "ad_click", "quote_requested", "purchase", "purchase"]  # every preset entered; purchase x2
    kinds += [noise] * (Limits().dedup_capacity + RECENT)  # then enough to fill the memory and the recent list
    ids = widest_event_ids()
    return [make(kind, contact, event_id=ids[n], **longest) for n, kind in enumerate(kinds)]


def test_the_bound_for_the_presets_is_the_one_the_readme_states() -> None:
    assert LAYOUT.max_entry_bytes(Limits()) == STATED
    assert f"{STATED:,} bytes" in (ROOT / "README.md").read_text()


def test_the_longest_values_everywhere_keep_the_entry_under_the_bound() -> None:
    run = replay(FUNNELS, longest_journey())
    outputs = run.outputs
    ((contact, state),) = run.engine.store.items()
    # The state is as full as it gets:
    assert len(state.recent) == RECENT and len(state.seen_ids) == Limits().dedup_capacity
    assert set(state.positions) == set(PRESETS) and dict(state.counts) == {"purchase": 2}
    for touch in (state.first, *state.recent):
        assert (len(touch.type), len(touch.channel or ""), len(touch.campaign or "")) == (64, 64, 256)
    assert all(len(str(at)) == 18 for at in (*state.seen_at, state.last_at))
    assert all(len(str(digest)) == 20 for digest in state.seen_ids)
    assert {o["funnel"] for o in outputs if o["kind"] == "transition"} == set(PRESETS)

    entry = encode_entry(WIDEST_OFFSET, state, LAYOUT)
    assert decode_entry(entry) == (WIDEST_OFFSET, state)
    assert len(entry) <= STATED
    assert len(entry) >= STATED - 8  # the bound is not slack: only sequences stay below their most digits
    print(f"longest entry: {len(entry):,} bytes, bound {STATED:,}; key (contact id): {len(contact.encode())} bytes")


def test_printable_ascii_at_the_longest_stays_far_under_the_bound() -> None:
    """What a producer sending ordinary long names costs: about a quarter of the worst case."""
    printable = [
        {k: v.replace("\x01", "x") if isinstance(v, str) else v for k, v in doc.items()} for doc in longest_journey()
    ]
    ((_, state),) = replay(FUNNELS, printable).engine.store.items()
    size = len(encode_entry(WIDEST_OFFSET, state, LAYOUT))
    assert 3_500 < size < 4_500, size


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8) | st.sampled_from(
    ["\x01" * MAX_CHANNEL, "😀" * MAX_CHANNEL, "\\" * MAX_CHANNEL]
)
KINDS = st.sampled_from(sorted({t for f in FUNNELS for t in f.types})) | st.sampled_from(
    ["\x01" * MAX_TYPE, "é" * MAX_TYPE, '"' * MAX_TYPE]
)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(KINDS, TEXT, TEXT | st.just("\x1f" * MAX_CAMPAIGN), st.integers(0, 40 * 86_400)),
        min_size=1,
        max_size=60,
    ),
    start=st.sampled_from(["0001-01-01T00:00:00+00:00", "1500-03-01T00:00:00+00:00", "9000-01-01T00:00:00+00:00"]),
)
def test_any_journey_stays_under_the_bound(steps: list[tuple[str, str, str, int]], start: str) -> None:
    make = Touchpoints(start=datetime.fromisoformat(start))
    records = [
        line(make(kind, "c1", after=timedelta(seconds=gap), channel=channel[:MAX_CHANNEL], campaign=campaign))
        for kind, channel, campaign, gap in steps
    ]
    run = replay(FUNNELS, records, flush=400 * DAY, check=False)  # as sent: through JSON; every stall fires
    assert run.letters == []
    for state in run.engine.store.values():
        assert len(encode_entry(WIDEST_OFFSET, state, LAYOUT)) <= STATED
