"""Named invariants of the funnel core, over random touchpoint streams (SPEC "Semantics").

Streams mix a few contacts, every touchpoint type the presets use plus unknown ones,
and gaps from nothing up to ~400 days (stall times, and a microsecond either side of
them, included) so that entries, skips, losses, stalls and reactivations all happen.
All four presets run together.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from factories import HOUR, T0, Doc, Replay, Touchpoints, all_presets, by_contact, journeys, replay
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PRESET_FUNNELS = all_presets()
STAGES = {f.name: f.stages for f in PRESET_FUNNELS}
TERMINAL = {f.name: {s for s, end in zip(f.stages, f.terminal, strict=True) if end} for f in PRESET_FUNNELS}
TYPES = [*sorted({r.type for f in PRESET_FUNNELS for r in (*f.rules, *f.lost)}), "x_unknown", "mystery_event"]
# Lost types are few among ~40; draw them (and purchase, for nth=2) more often.
WEIGHTED_TYPES = TYPES + 4 * sorted({r.type for f in PRESET_FUNNELS for r in f.lost}) + 2 * ["purchase"]
CONTACTS = ("c0", "c1", "c2", "c3")
# At most this many touchpoints, so no contact outgrows the default dedup memory (32 ids).
MAX_TOUCHPOINTS = 30
HORIZON = 24 * HOUR

SECONDS = st.integers(1, 3600).map(lambda s: timedelta(seconds=s))
DAYS = st.integers(1, 40 * 86400).map(lambda s: timedelta(seconds=s))
MONTHS = st.integers(40, 400).map(lambda d: timedelta(days=d))
AT_A_STALL = st.tuples(
    st.sampled_from(sorted({s for f in PRESET_FUNNELS for s in f.stall_after if s is not None})),
    st.sampled_from([-1, 0, 1]),
).map(lambda p: timedelta(microseconds=p[0] + p[1]))
GAPS = st.one_of(st.just(timedelta(0)), SECONDS, DAYS, MONTHS, AT_A_STALL)

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Scenario(NamedTuple):
    touches: list[Doc]  # non-decreasing event times, unique event ids
    until: datetime  # at or after the last event time, as a replay's --until


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    steps = draw(
        st.lists(st.tuples(st.sampled_from(CONTACTS), st.sampled_from(WEIGHTED_TYPES), GAPS), max_size=MAX_TOUCHPOINTS)
    )
    tp = Touchpoints()
    at, touches = T0, []
    for contact, kind, gap in steps:
        at += gap
        touches.append(tp(kind, contact=contact, at=at))
    return Scenario(touches, at + draw(GAPS))


def run(scenario: Scenario, touches: Sequence[Doc] | None = None, check: bool = False) -> Replay:
    return replay(PRESET_FUNNELS, scenario.touches if touches is None else touches, until=scenario.until, check=check)


@given(scenarios())
@PROPERTY
def test_outputs_match_their_schemas(scenario: Scenario) -> None:
    for out in run(scenario, check=True).outputs:
        durations = [out.get(k) for k in ("time_in_previous_stage_s", "since_funnel_entry_s", "time_in_stage_s")]
        assert all(d >= 0 for d in durations if d is not None), out


@given(scenarios())
@PROPERTY
def test_a_contact_never_moves_backwards(scenario: Scenario) -> None:
    for (contact, funnel), outputs in journeys(run(scenario).outputs).items():
        stages = STAGES[funnel]
        current = -1
        for out in (o for o in outputs if o["kind"] == "transition"):
            target = stages.index(out["to_stage"])
            assert target > current, (contact, funnel, outputs)
            assert out["from_stage"] == (stages[current] if current >= 0 else None)
            assert out["skipped"] == ([] if current < 0 else list(stages[current + 1 : target]))
            current = target


@given(scenarios())
@PROPERTY
def test_at_most_one_dropoff_per_stage_visit(scenario: Scenario) -> None:
    for key, outputs in journeys(run(scenario).outputs).items():
        stage, dropped = None, False
        for out in outputs:
            if out["kind"] == "transition":
                stage, dropped = out["to_stage"], False
                continue
            assert stage is not None, ("drop-off before entry", key, outputs)
            assert out["stage"] == stage, key
            assert not dropped, ("second drop-off in one stage visit", key, outputs)
            assert stage not in TERMINAL[key[1]], ("drop-off in a terminal stage", key)
            dropped = True


@given(scenarios())
@PROPERTY
def test_reactivated_exactly_when_the_previous_stage_visit_was_dropped(scenario: Scenario) -> None:
    for key, outputs in journeys(run(scenario).outputs).items():
        dropped = False
        for out in outputs:
            if out["kind"] == "transition":
                assert out["reactivated"] is dropped, (key, outputs)
            dropped = out["kind"] == "dropoff"


def _within_horizon(touches: Sequence[Doc], original: int) -> list[int]:
    """Insert positions after `original` where the contact's latest time is < 24h past it."""
    contact, sent = touches[original]["contact_id"], datetime.fromisoformat(touches[original]["occurred_at"])
    positions = []
    for position in range(original + 1, len(touches) + 1):
        before = touches[position - 1]
        if before["contact_id"] == contact and datetime.fromisoformat(before["occurred_at"]) - sent >= HORIZON:
            break
        positions.append(position)
    return positions


@given(scenarios(), st.data())
@PROPERTY
def test_a_duplicate_changes_nothing(scenario: Scenario, data: st.DataObject) -> None:
    touches = scenario.touches
    if not touches:
        return
    inserts: list[tuple[int, int]] = []
    for _ in range(data.draw(st.integers(1, 5), label="duplicates")):
        original = data.draw(st.integers(0, len(touches) - 1), label="original")
        inserts.append((data.draw(st.sampled_from(_within_horizon(touches, original)), label="position"), original))
    with_dups: list[Doc] = []
    for position in range(len(touches) + 1):
        with_dups += [dict(touches[i]) for p, i in inserts if p == position]
        if position < len(touches):
            with_dups.append(touches[position])
    plain, replayed = run(scenario), run(scenario, with_dups)
    assert replayed.outputs == plain.outputs
    assert replayed.engine.duplicates == len(inserts)


@given(scenarios())
@PROPERTY
def test_sequences_are_gap_free_from_one_per_contact_and_funnel(scenario: Scenario) -> None:
    for key, outputs in journeys(run(scenario).outputs).items():
        assert [o["sequence"] for o in outputs] == list(range(1, len(outputs) + 1)), key


@given(scenarios())
@PROPERTY
def test_replaying_the_same_input_twice_gives_identical_output(scenario: Scenario) -> None:
    assert run(scenario).outputs == run(scenario).outputs


@given(scenarios(), st.integers(1, len(CONTACTS)), st.data())
@PROPERTY
def test_splitting_the_input_by_contact_gives_the_same_outputs_per_contact(
    scenario: Scenario, groups: int, data: st.DataObject
) -> None:
    group_of: dict[str, Any] = data.draw(
        st.fixed_dictionaries({c: st.integers(0, groups - 1) for c in CONTACTS}), label="groups"
    )
    whole = by_contact(run(scenario).outputs)
    split: dict[str, list[Doc]] = {}
    for group in range(groups):
        part = [t for t in scenario.touches if group_of[t["contact_id"]] == group]
        split.update(by_contact(run(scenario, part).outputs))
    assert split == whole


@given(scenarios())
@PROPERTY
def test_ids_are_unique(scenario: Scenario) -> None:
    ids = [o["id"] for o in run(scenario).outputs]
    assert len(ids) == len(set(ids))


def test_the_streams_exercise_every_kind_of_output() -> None:
    """Guard against a strategy that never reaches the interesting cases."""
    seen: set[tuple[str, ...]] = set()

    @given(scenarios())
    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    def collect(scenario: Scenario) -> None:
        for out in run(scenario).outputs:
            if out["kind"] == "dropoff":
                seen.add(("dropoff", out["reason"]))
            else:
                seen.add(
                    ("transition", "reactivated" if out["reactivated"] else "plain", "skip" * bool(out["skipped"]))
                )

    collect()
    assert {("dropoff", "lost"), ("dropoff", "stalled"), ("transition", "reactivated", "")} <= seen
    assert ("transition", "plain", "skip") in seen
