"""SPEC "Semantics": stalls, the clock, and reactivation after a stall."""

from __future__ import annotations

from factories import DAY, HOUR, T0, US, Touchpoints, brief, define, instant, micros, replay

SUSPECT_STALL = 30 * DAY  # b2b-sales: suspect 30d


def test_a_stall_does_not_fire_when_the_clock_reaches_the_deadline() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click")], until=T0 + SUSPECT_STALL)
    assert [brief(o)[3:] for o in run.outputs] == [(None, "suspect")]


def test_a_stall_fires_once_the_clock_passes_the_deadline() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click")], until=T0 + SUSPECT_STALL + US)
    [stall] = run.tail
    assert stall["kind"] == "dropoff"
    assert (stall["funnel"], stall["contact_id"], stall["stage"], stall["reason"]) == (
        "b2b-sales",
        "c1",
        "suspect",
        "stalled",
    )
    assert instant(stall["occurred_at"]) == T0 + SUSPECT_STALL
    assert instant(stall["entered_stage_at"]) == T0
    assert stall["time_in_stage_s"] == SUSPECT_STALL.total_seconds()
    assert instant(stall["last_touch_at"]) == T0
    assert stall["sequence"] == 2


def test_the_deadline_counts_from_the_stage_entry_not_from_the_latest_touchpoint() -> None:
    tp = Touchpoints()
    touches = [tp("ad_click"), tp("page_view", after=20 * DAY), tp("content_view", after=5 * DAY)]
    run = replay(["b2b-sales"], touches, until=T0 + SUSPECT_STALL + US)
    [stall] = run.tail
    assert instant(stall["occurred_at"]) == T0 + SUSPECT_STALL
    assert instant(stall["last_touch_at"]) == T0 + 25 * DAY


def test_a_stall_fires_only_once_per_stage_visit() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click"), tp("page_view", after=31 * DAY)], until=T0 + 2000 * DAY)
    assert [brief(o)[3:] for o in run.outputs] == [(None, "suspect"), ("suspect", "stalled")]


def test_a_forward_touchpoint_at_the_deadline_moves_without_a_stall() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click"), tp("form_submitted", at=T0 + SUSPECT_STALL)])
    assert [brief(o)[3:] for o in run.outputs] == [(None, "suspect"), ("suspect", "lead")]
    assert run.outputs[-1]["reactivated"] is False


def test_a_forward_touchpoint_after_the_deadline_first_fires_the_stall_then_moves_as_a_reactivation() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click"), tp("form_submitted", at=T0 + SUSPECT_STALL + US)])
    stall, move = run.steps[1]
    assert (stall["reason"], stall["sequence"]) == ("stalled", 2)
    assert instant(stall["occurred_at"]) == T0 + SUSPECT_STALL
    assert move["trigger"]["event_id"] == "e2"
    assert (move["from_stage"], move["to_stage"], move["reactivated"], move["sequence"]) == ("suspect", "lead", True, 3)
    assert move["time_in_previous_stage_s"] == (SUSPECT_STALL + US).total_seconds()


def test_another_contacts_touchpoint_advances_the_clock_and_fires_due_stalls_first() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click", contact="a"), tp("ad_click", contact="b", after=31 * DAY)])
    assert [brief(o)[2:] for o in run.steps[1]] == [("a", "suspect", "stalled"), ("b", None, "suspect")]


def test_a_touchpoint_that_moves_nothing_still_fires_its_contacts_due_stall() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("form_submitted"), tp("page_view", after=31 * DAY)])
    assert [brief(o)[3:] for o in run.steps[1]] == [("lead", "stalled")]


def test_a_reactivated_contact_can_stall_again_in_its_new_stage() -> None:
    tp = Touchpoints()
    moved_at = T0 + 40 * DAY
    run = replay(["b2b-sales"], [tp("ad_click"), tp("form_submitted", at=moved_at)], until=moved_at + 30 * DAY + US)
    assert [brief(o)[3:] for o in run.outputs] == [
        (None, "suspect"),
        ("suspect", "stalled"),
        ("suspect", "lead"),
        ("lead", "stalled"),
    ]
    second = run.outputs[-1]
    assert instant(second["entered_stage_at"]) == moved_at
    assert instant(second["occurred_at"]) == moved_at + 30 * DAY
    assert second["sequence"] == 4


def test_a_reactivated_contact_can_be_lost_in_its_new_stage() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click"), tp("form_submitted", after=40 * DAY), tp("unsubscribed")])
    assert [brief(o)[3:] for o in run.outputs][-2:] == [("suspect", "lead"), ("lead", "lost")]


def test_a_terminal_stage_never_stalls() -> None:
    tp = Touchpoints()
    run = replay(["aida", "quote-to-deal"], [tp("purchase"), tp("quote_accepted")], until=T0 + 3650 * DAY)
    assert [o["to_stage"] for o in run.outputs] == ["action", "won"]


def test_a_stage_without_a_stall_time_never_stalls() -> None:
    funnel = define(
        "slow",
        ["browsing", "buying", "bought"],
        [
            {"stage": "browsing", "type": "page_view"},
            {"stage": "buying", "type": "cart_add"},
            {"stage": "bought", "type": "purchase"},
        ],
        stall_after={"buying": "1h"},
    )
    tp = Touchpoints()
    run = replay([funnel], [tp("page_view")], until=T0 + 3650 * DAY)
    assert run.tail == []
    cart = tp("cart_add")
    run = replay([funnel], [cart], until=instant(cart["occurred_at"]) + HOUR + US)
    assert [brief(o)[3:] for o in run.tail] == [("buying", "stalled")]


def test_each_funnel_stalls_on_its_own_deadline() -> None:
    tp = Touchpoints()
    touches = [tp("ad_click")]
    at_15_days = replay(["b2b-sales", "aida"], touches, until=T0 + 15 * DAY)
    assert [brief(o)[1:] for o in at_15_days.tail] == [("aida", "c1", "awareness", "stalled")]
    at_31_days = replay(["b2b-sales", "aida"], touches, until=T0 + 31 * DAY)
    assert sorted(brief(o)[1] for o in at_31_days.tail) == ["aida", "b2b-sales"]


def test_the_clock_never_goes_back() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click"), tp("ad_click", contact="b", after=31 * DAY)])
    assert run.engine.advance_to(micros(T0)) == []
    assert run.engine.clock == micros(T0 + 31 * DAY)
