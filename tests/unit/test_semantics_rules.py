"""SPEC "Built-in funnels" / custom funnels: channel and property conditions in rules."""

from __future__ import annotations

from typing import Any

from factories import Touchpoints, define, replay

SHOP = define(
    "shop",
    ["visitor", "subscriber", "buyer", "big_spender"],
    [
        {"stage": "visitor", "type": "page_view"},
        {"stage": "subscriber", "type": "newsletter_signup", "channel": "email"},
        {"stage": "subscriber", "type": "form_submitted", "channel": ["organic", "referral"]},
        {"stage": "subscriber", "type": "plan_chosen", "properties": {"plan": "pro", "trial": {"ne": True}}},
        {"stage": "buyer", "type": "purchase", "properties": {"amount": {"gte": 10}}},
        {"stage": "buyer", "type": "voucher_used", "properties": {"code": {"exists": True}, "tier": {"not_in": ["x"]}}},
        {
            "stage": "big_spender",
            "type": "purchase",
            "properties": {"amount": {"gt": 1000, "lte": 100000}, "currency": {"in": ["EUR", "USD"]}},
        },
    ],
    lost=[
        {"type": "unsubscribed", "properties": {"reason": {"exists": True}}},
        {"type": "refund", "channel": "support", "properties": {"amount": {"lt": 50}}},
    ],
)


def _stage_after(first: dict[str, Any], second: dict[str, Any]) -> str | None:
    """The stage a contact reaches when `second` follows `first` (None: no move)."""
    moves = replay([SHOP], [first, second]).steps[1]
    assert all(o["kind"] == "transition" for o in moves)
    return moves[-1]["to_stage"] if moves else None


def _lost(*touches: dict[str, Any]) -> bool:
    return any(o["kind"] == "dropoff" for o in replay([SHOP], touches).outputs)


def test_a_channel_condition_matches_only_that_channel() -> None:
    tp = Touchpoints()
    assert _stage_after(tp("page_view"), tp("newsletter_signup", channel="email")) == "subscriber"
    assert _stage_after(tp("page_view"), tp("newsletter_signup", channel="paid_search")) is None
    assert _stage_after(tp("page_view"), tp("newsletter_signup")) is None  # no channel at all


def test_a_channel_list_matches_any_channel_in_it() -> None:
    tp = Touchpoints()
    assert _stage_after(tp("page_view"), tp("form_submitted", channel="organic")) == "subscriber"
    assert _stage_after(tp("page_view"), tp("form_submitted", channel="referral")) == "subscriber"
    assert _stage_after(tp("page_view"), tp("form_submitted", channel="email")) is None


def test_a_rule_without_a_channel_matches_every_channel() -> None:
    tp = Touchpoints()
    for channel in ("email", "paid_search", None):
        [entry] = replay([SHOP], [tp("page_view", channel=channel)]).outputs
        assert entry["to_stage"] == "visitor"


def test_scalar_and_ne_conditions() -> None:
    tp = Touchpoints()
    visit = tp("page_view")
    assert _stage_after(visit, tp("plan_chosen", properties={"plan": "pro", "trial": False})) == "subscriber"
    assert _stage_after(visit, tp("plan_chosen", properties={"plan": "pro", "trial": 1})) == "subscriber"
    assert _stage_after(visit, tp("plan_chosen", properties={"plan": "pro", "trial": True})) is None
    assert _stage_after(visit, tp("plan_chosen", properties={"plan": "basic", "trial": False})) is None
    assert _stage_after(visit, tp("plan_chosen", properties={"trial": False})) is None  # missing is not equal


def test_gte_includes_its_bound_and_needs_a_number() -> None:
    tp = Touchpoints()
    visit = tp("page_view")
    assert _stage_after(visit, tp("purchase", properties={"amount": 10})) == "buyer"
    assert _stage_after(visit, tp("purchase", properties={"amount": 10.5})) == "buyer"
    assert _stage_after(visit, tp("purchase", properties={"amount": 9.99})) is None
    assert _stage_after(visit, tp("purchase", properties={"amount": "10"})) is None
    assert _stage_after(visit, tp("purchase", properties={"amount": True})) is None
    assert _stage_after(visit, tp("purchase")) is None


def test_gt_lte_and_in_conditions_must_all_hold() -> None:
    tp = Touchpoints()
    visit = tp("page_view")
    assert _stage_after(visit, tp("purchase", properties={"amount": 1001, "currency": "EUR"})) == "big_spender"
    assert _stage_after(visit, tp("purchase", properties={"amount": 100000, "currency": "USD"})) == "big_spender"
    # Each failing condition falls back to the nearer stage whose rule still holds.
    assert _stage_after(visit, tp("purchase", properties={"amount": 1000, "currency": "EUR"})) == "buyer"
    assert _stage_after(visit, tp("purchase", properties={"amount": 100001, "currency": "EUR"})) == "buyer"
    assert _stage_after(visit, tp("purchase", properties={"amount": 5000, "currency": "GBP"})) == "buyer"


def test_exists_and_not_in_conditions() -> None:
    tp = Touchpoints()
    visit = tp("page_view")
    assert _stage_after(visit, tp("voucher_used", properties={"code": "X1", "tier": "y"})) == "buyer"
    assert _stage_after(visit, tp("voucher_used", properties={"code": "", "tier": "y"})) == "buyer"
    assert _stage_after(visit, tp("voucher_used", properties={"code": "X1", "tier": "x"})) is None
    assert _stage_after(visit, tp("voucher_used", properties={"other": 1, "tier": "y"})) is None


def test_lost_rules_take_conditions_too() -> None:
    tp = Touchpoints()
    assert _lost(tp("page_view"), tp("unsubscribed", properties={"reason": "too many mails"}))
    assert not _lost(tp("page_view"), tp("unsubscribed"))
    assert _lost(tp("page_view"), tp("refund", channel="support", properties={"amount": 49.5}))
    assert not _lost(tp("page_view"), tp("refund", channel="support", properties={"amount": 50}))
    assert not _lost(tp("page_view"), tp("refund", channel="email", properties={"amount": 1}))
