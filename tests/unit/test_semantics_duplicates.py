"""SPEC "Semantics" (Order): duplicates within the dedup horizon, and late input."""

from __future__ import annotations

import pytest
from factories import HOUR, MINUTE, T0, US, Touchpoints, brief, define, micros, replay, rfc3339

from processor.funnel.state import Limits

QUICK = define(
    "quick",
    ["visitor", "lead", "customer"],
    [
        {"stage": "visitor", "type": "page_view"},
        {"stage": "lead", "type": "form_submitted"},
        {"stage": "customer", "type": "purchase"},
    ],
    stall_after={"visitor": "1h", "lead": "1h"},
)


def test_a_duplicate_within_the_horizon_emits_nothing_and_changes_nothing() -> None:
    tp = Touchpoints()
    visit, form = tp("page_view"), tp("form_submitted", after=HOUR)
    later = [tp("purchase", after=2 * HOUR), tp("unsubscribed")]
    plain = replay(["b2b-sales"], [visit, form, *later], until=T0 + 100 * HOUR)
    with_dups = replay(["b2b-sales"], [visit, form, dict(form), dict(visit), *later], until=T0 + 100 * HOUR)
    assert with_dups.steps[2:4] == [[], []]
    assert with_dups.outputs == plain.outputs
    assert with_dups.engine.duplicates == 2


def test_a_duplicate_is_recognised_by_event_id_alone() -> None:
    tp = Touchpoints()
    visit = tp("page_view")
    resent = {**visit, "type": "purchase", "channel": "email", "occurred_at": rfc3339(T0 + MINUTE)}
    run = replay(["b2b-sales"], [visit, resent, tp("unsubscribed")])
    assert run.steps[1] == []
    assert [brief(o)[3:] for o in run.outputs] == [(None, "suspect"), ("suspect", "lost")]


def test_a_duplicate_does_not_move_the_clock_or_fire_deadlines() -> None:
    tp = Touchpoints()
    visit = tp("page_view")
    late_looking = {**visit, "occurred_at": rfc3339(T0 + 2 * HOUR)}  # past the 1h stall deadline
    run = replay([QUICK], [visit, late_looking])
    assert run.steps[1] == []
    assert run.engine.clock == micros(T0)
    assert run.engine.advance_to(micros(T0 + HOUR)) == []  # the deadline itself does not fire either


def test_a_duplicate_is_not_late_and_does_not_appear_among_recent_touchpoints() -> None:
    tp = Touchpoints()
    visit, form = tp("page_view"), tp("form_submitted")
    run = replay(["b2b-sales"], [visit, form, dict(visit), tp("unsubscribed")])
    assert run.engine.late == 0
    lost = run.outputs[-1]
    assert [t["type"] for t in lost["recent_touchpoints"]] == ["page_view", "form_submitted", "unsubscribed"]


def test_the_same_event_id_within_24_hours_of_the_contacts_latest_touchpoint_is_a_duplicate() -> None:
    tp = Touchpoints()
    buy = tp("purchase")
    run = replay(["b2b-sales"], [buy, tp("page_view", after=23 * HOUR), {**buy, "occurred_at": rfc3339(tp.now)}])
    assert run.steps[2] == []
    assert run.engine.duplicates == 1


def test_the_same_event_id_beyond_the_horizon_is_processed_as_new() -> None:
    tp = Touchpoints()
    buy = tp("purchase")
    run = replay(["b2b-sales"], [buy, tp("page_view", after=25 * HOUR), {**buy, "occurred_at": rfc3339(tp.now)}])
    assert [brief(o)[3:] for o in run.steps[2]] == [("customer", "loyal_customer")]  # counted as the 2nd purchase
    assert run.engine.duplicates == 0


def test_the_horizon_is_measured_on_the_originals_event_time_even_when_it_arrived_late() -> None:
    tp = Touchpoints()
    buy = tp("purchase", at=T0)
    touches = [tp("page_view", at=T0 + 10 * HOUR), buy, tp("page_view", at=T0 + 30 * HOUR), dict(buy)]
    run = replay(["b2b-sales"], touches)
    assert [brief(o)[4] for o in run.steps[3]] == ["loyal_customer"]  # 30h after the original: new
    assert run.engine.duplicates == 0


def test_a_shorter_horizon_from_the_limits_is_honoured() -> None:
    tp = Touchpoints()
    buy = tp("purchase")
    touches = [buy, tp("page_view", after=2 * HOUR), {**buy, "occurred_at": rfc3339(tp.now)}]
    run = replay(["b2b-sales"], touches, limits=Limits(dedup_horizon_us=HOUR // US))
    assert [brief(o)[4] for o in run.steps[2]] == ["loyal_customer"]


def test_dedup_memory_is_bounded_by_its_capacity() -> None:
    tp = Touchpoints()
    buy = tp("purchase")
    views = [tp("page_view") for _ in range(3)]
    touches = [buy, *views, dict(views[-1]), dict(buy)]
    small = replay(["b2b-sales"], touches, limits=Limits(dedup_capacity=3))
    assert small.steps[4] == []  # the latest ids are still remembered
    assert [brief(o)[4] for o in small.steps[5]] == ["loyal_customer"]  # the oldest was forgotten
    assert small.engine.duplicates == 1
    roomy = replay(["b2b-sales"], touches)
    assert roomy.steps[5] == []
    assert roomy.engine.duplicates == 2


@pytest.mark.parametrize("capacity", [1, 2, 5])
def test_the_dedup_memory_holds_the_latest_ids_up_to_its_capacity(capacity: int) -> None:
    tp = Touchpoints()
    sent = [tp("x_unknown") for _ in range(capacity + 2)]
    newest_first = [dict(t) for t in reversed(sent)]
    run = replay(["b2b-sales"], [*sent, *newest_first[: capacity + 1]], limits=Limits(dedup_capacity=capacity))
    assert run.engine.duplicates == capacity


def test_duplicates_are_per_contact() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click", contact="a", event_id="x"), tp("ad_click", contact="b", event_id="x")])
    assert [o["contact_id"] for o in run.outputs] == ["a", "b"]


def test_out_of_order_input_is_counted_as_late() -> None:
    tp = Touchpoints()
    touches = [
        tp("ad_click", contact="a", at=T0 + HOUR),
        tp("ad_click", contact="b", at=T0 + HOUR),  # same time: not late
        tp("form_submitted", contact="b", at=T0),  # older than the clock: late
        tp("form_submitted", contact="a", at=T0 + HOUR - US),
        tp("purchase", contact="a", at=T0 + 2 * HOUR),
    ]
    run = replay(["b2b-sales"], touches)
    assert run.engine.late == 2
    assert run.engine.clock == micros(T0 + 2 * HOUR)
    assert [o["to_stage"] for o in run.outputs] == ["suspect", "suspect", "lead", "lead", "customer"]
