"""SPEC "Semantics": lost touchpoints, and at most one drop-off per stage visit."""

from __future__ import annotations

from factories import DAY, HOUR, T0, Touchpoints, brief, define, instant, replay

# Types that are both stage rules and lost rules: a closed deal moves a lead forward
# into "qualified"; an ended call puts a contact in "lead" but loses one already there.
CLOSING = define(
    "closing",
    ["lead", "qualified", "won"],
    [
        {"stage": "lead", "type": ["form_submitted", "call_ended"]},
        {"stage": "qualified", "type": ["lead_qualified", "deal_closed"]},
        {"stage": "won", "type": "contract_signed"},
    ],
    lost=[{"type": ["unsubscribed", "deal_closed", "call_ended"]}],
)


def test_a_lost_touchpoint_in_a_non_terminal_stage_drops_the_contact_as_lost() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("form_submitted"), tp("page_view", after=HOUR), tp("deal_lost", after=2 * HOUR)])
    _entry, lost = run.outputs
    assert lost["kind"] == "dropoff"
    assert (lost["funnel"], lost["contact_id"], lost["stage"], lost["reason"]) == ("b2b-sales", "c1", "lead", "lost")
    assert instant(lost["entered_stage_at"]) == T0
    assert instant(lost["occurred_at"]) == T0 + 3 * HOUR
    assert lost["time_in_stage_s"] == 3 * 3600
    assert lost["sequence"] == 2


def test_every_lost_rule_type_loses_the_contact() -> None:
    tp = Touchpoints()
    for kind in ("quote_rejected", "deal_lost"):
        run = replay(["quote-to-deal"], [tp("quote_requested", contact=kind), tp(kind, contact=kind)])
        assert [brief(o)[3:] for o in run.outputs] == [(None, "request"), ("request", "lost")]


def test_a_lost_touchpoint_in_a_terminal_stage_emits_nothing() -> None:
    tp = Touchpoints()
    run = replay(["aida", "b2b-sales"], [tp("purchase"), tp("purchase"), tp("unsubscribed")])
    assert [(o["funnel"], o["to_stage"]) for o in run.outputs] == [
        ("aida", "action"),
        ("b2b-sales", "customer"),
        ("b2b-sales", "loyal_customer"),
    ]
    assert run.steps[-1] == []


def test_a_lost_touchpoint_before_the_funnel_entry_emits_nothing() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("unsubscribed"), tp("deal_lost"), tp("ad_click")])
    assert [len(step) for step in run.steps] == [0, 0, 1]
    [entry] = run.outputs
    assert (entry["to_stage"], entry["sequence"], entry["reactivated"]) == ("suspect", 1, False)


def test_a_touchpoint_matching_a_forward_stage_and_a_lost_rule_moves_forward() -> None:
    tp = Touchpoints()
    run = replay([CLOSING], [tp("form_submitted"), tp("deal_closed")])
    assert [brief(o)[3:] for o in run.outputs] == [(None, "lead"), ("lead", "qualified")]


def test_a_touchpoint_matching_a_lost_rule_and_only_the_current_or_an_earlier_stage_is_lost() -> None:
    tp = Touchpoints()
    earlier = replay([CLOSING], [tp("lead_qualified", contact="a"), tp("call_ended", contact="a")])
    assert [brief(o)[3:] for o in earlier.outputs] == [(None, "qualified"), ("qualified", "lost")]
    current = replay([CLOSING], [tp("form_submitted", contact="b"), tp("call_ended", contact="b")])
    assert [brief(o)[3:] for o in current.outputs] == [(None, "lead"), ("lead", "lost")]


def test_a_second_lost_touchpoint_in_the_same_stage_visit_emits_nothing() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("page_view"), tp("unsubscribed"), tp("deal_lost"), tp("unsubscribed")])
    assert [brief(o)[3:] for o in run.outputs] == [(None, "suspect"), ("suspect", "lost")]


def test_a_lost_touchpoint_after_a_stall_in_the_same_stage_visit_emits_nothing() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("page_view"), tp("unsubscribed", after=31 * DAY)])
    assert [brief(o)[3:] for o in run.outputs] == [(None, "suspect"), ("suspect", "stalled")]
    assert run.steps[-1] == [run.outputs[-1]]  # the stall fired; the lost touchpoint added nothing


def test_a_lost_contact_does_not_stall_in_the_same_stage_visit() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("page_view"), tp("unsubscribed")], until=T0 + 400 * DAY)
    assert [brief(o)[3:] for o in run.outputs] == [(None, "suspect"), ("suspect", "lost")]
    assert run.tail == []


def test_a_lost_contact_that_moves_forward_is_reactivated_and_can_be_lost_again() -> None:
    tp = Touchpoints()
    run = replay(
        ["b2b-sales"],
        [tp("page_view"), tp("unsubscribed"), tp("meeting_held", after=DAY), tp("unsubscribed"), tp("deal_lost")],
    )
    assert [brief(o)[3:] for o in run.outputs] == [
        (None, "suspect"),
        ("suspect", "lost"),
        ("suspect", "prospect"),
        ("prospect", "lost"),
    ]
    move, lost_again = run.outputs[2:]
    assert move["reactivated"] is True
    assert move["skipped"] == ["lead"]
    assert instant(lost_again["entered_stage_at"]) == instant(move["occurred_at"])
    assert [o["sequence"] for o in run.outputs] == [1, 2, 3, 4]


def test_a_forward_move_that_was_never_dropped_is_not_reactivated() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales"], [tp("page_view"), tp("form_submitted"), tp("unsubscribed"), tp("purchase")])
    assert [o.get("reactivated") for o in run.outputs] == [False, False, None, True]
