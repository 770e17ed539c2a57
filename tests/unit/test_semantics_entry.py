"""SPEC "Semantics": entry into a funnel, forward-only moves, and `nth` rules."""

from __future__ import annotations

from typing import Any

from factories import HOUR, MINUTE, T0, Touchpoints, brief, define, instant, replay


def test_entry_puts_the_contact_in_the_furthest_stage_its_first_touchpoint_matches() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("demo_requested", channel="email", campaign="spring")])
    [entry] = run.outputs
    assert entry["kind"] == "transition"
    assert (entry["funnel"], entry["contact_id"]) == ("b2b-sales", "c1")
    assert entry["from_stage"] is None
    assert entry["to_stage"] == "prospect"
    assert entry["skipped"] == []
    assert entry["time_in_previous_stage_s"] is None
    assert entry["since_funnel_entry_s"] == 0
    assert entry["sequence"] == 1
    assert entry["reactivated"] is False
    assert instant(entry["occurred_at"]) == T0
    assert entry["trigger"] == {"event_id": "e1", "type": "demo_requested", "channel": "email", "campaign": "spring"}


def test_entry_picks_the_furthest_of_several_stages_one_type_matches() -> None:
    funnel = define(
        "signup-flow",
        ["visitor", "trial", "member"],
        [
            {"stage": "visitor", "type": ["page_view", "signup"]},
            {"stage": "trial", "type": "signup"},
            {"stage": "member", "type": "purchase"},
        ],
    )
    tp = Touchpoints()
    [entry] = replay([funnel], [tp("signup")]).outputs
    assert (entry["from_stage"], entry["to_stage"], entry["skipped"]) == (None, "trial", [])


def test_a_touchpoint_matching_no_stage_does_not_enter_the_funnel() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales", "aida"], [tp("x_unknown_type"), tp("order_delivered"), tp("briefing_held")])
    assert run.outputs == []


def test_a_forward_move_lists_the_skipped_stages_in_order() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click"), tp("purchase", after=2 * HOUR)])
    _entry, move = run.outputs
    assert (move["from_stage"], move["to_stage"]) == ("suspect", "customer")
    assert move["skipped"] == ["lead", "prospect"]
    assert move["time_in_previous_stage_s"] == 7200
    assert move["since_funnel_entry_s"] == 7200
    assert move["sequence"] == 2
    assert move["reactivated"] is False
    assert instant(move["occurred_at"]) == T0 + 2 * HOUR


def test_a_move_to_the_next_stage_skips_nothing() -> None:
    tp = Touchpoints()
    run = replay(["quote-to-deal"], [tp("quote_requested"), tp("briefing_held"), tp("quote_sent")])
    assert [(o["from_stage"], o["to_stage"], o["skipped"]) for o in run.outputs] == [
        (None, "request", []),
        ("request", "briefing", []),
        ("briefing", "proposal", []),
    ]


def test_since_funnel_entry_counts_from_the_entry_not_from_the_previous_stage() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("ad_click"), tp("form_submitted", after=HOUR), tp("meeting_held", after=HOUR)])
    last = run.outputs[-1]
    assert (last["time_in_previous_stage_s"], last["since_funnel_entry_s"]) == (3600, 7200)


def test_a_touchpoint_matching_the_current_or_an_earlier_stage_moves_nothing() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("form_submitted"), tp("ad_click"), tp("content_download"), tp("page_view")])
    assert [len(step) for step in run.steps] == [1, 0, 0, 0]


def test_each_stage_is_entered_at_most_once() -> None:
    tp = Touchpoints()
    types = ["page_view", "form_submitted", "page_view", "form_submitted", "demo_requested", "form_submitted"]
    run = replay(["b2b-sales"], [tp(t) for t in [*types, "demo_requested", "page_view"]])
    assert [o["to_stage"] for o in run.outputs] == ["suspect", "lead", "prospect"]


def test_nth_two_matches_the_second_touchpoint_of_the_type() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("purchase"), tp("purchase", after=30 * MINUTE)])
    assert [brief(o) for o in run.outputs] == [
        ("transition", "b2b-sales", "c1", None, "customer"),
        ("transition", "b2b-sales", "c1", "customer", "loyal_customer"),
    ]


REPEAT_BUYERS: dict[str, Any] = {
    "stages": ["browsing", "repeat_buyer"],
    "rules": [{"stage": "browsing", "type": "page_view"}, {"stage": "repeat_buyer", "type": "purchase", "nth": 2}],
}


def test_nth_counts_touchpoints_from_before_the_funnel_entry() -> None:
    funnel = define("repeat", **REPEAT_BUYERS)
    tp = Touchpoints()
    run = replay([funnel], [tp("purchase"), tp("page_view"), tp("purchase")])
    assert [len(step) for step in run.steps] == [0, 1, 1]
    assert [(o["from_stage"], o["to_stage"]) for o in run.outputs] == [(None, "browsing"), ("browsing", "repeat_buyer")]


def test_nth_matches_every_later_touchpoint_of_the_type_too() -> None:
    # Only online purchases count for the stage, but every purchase counts for nth:
    # the third purchase (the first online one) is "a later touchpoint" than the 2nd.
    funnel = define(
        "online-repeat",
        ["browsing", "repeat_buyer"],
        [
            {"stage": "browsing", "type": "page_view"},
            {"stage": "repeat_buyer", "type": "purchase", "nth": 2, "channel": "online"},
        ],
    )
    tp = Touchpoints()
    run = replay(
        [funnel],
        [
            tp("page_view"),
            tp("purchase", channel="store"),
            tp("purchase", channel="store"),
            tp("purchase", channel="online"),
        ],
    )
    assert [len(step) for step in run.steps] == [1, 0, 0, 1]
    assert run.steps[-1][0]["to_stage"] == "repeat_buyer"


def test_nth_counts_only_touchpoints_of_its_own_type() -> None:
    funnel = define("repeat", **REPEAT_BUYERS)
    tp = Touchpoints()
    run = replay([funnel], [tp("page_view"), tp("purchase"), tp("cart_add"), tp("page_view")])
    assert [o["to_stage"] for o in run.outputs] == ["browsing"]


def test_nth_does_not_count_duplicates() -> None:
    funnel = define("repeat", **REPEAT_BUYERS)
    tp = Touchpoints()
    visit, first = tp("page_view"), tp("purchase")
    run = replay([funnel], [visit, first, dict(first), tp("purchase")])
    assert [len(step) for step in run.steps] == [1, 0, 0, 1]
    assert run.steps[-1][0]["to_stage"] == "repeat_buyer"
