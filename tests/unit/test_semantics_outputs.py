"""SPEC "Outputs": ids, sequences, times, durations, touch context, funnel order."""

from __future__ import annotations

import re

import pytest
from factories import DAY, HOUR, T0, Touchpoints, brief, instant, journeys, replay

RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
ALL = ["b2b-sales", "aida", "customer-journey", "quote-to-deal"]


def _journey(contact: str, tp: Touchpoints, start_day: int) -> list[dict[str, object]]:
    kinds = ["ad_click", "form_submitted", "quote_requested", "unsubscribed", "purchase", "purchase"]
    return [tp(kind, contact=contact, at=T0 + (start_day + 2 * i) * DAY) for i, kind in enumerate(kinds)]


def _times(doc: dict[str, object]) -> list[str]:
    """Every timestamp in an output, nested ones included."""
    found: list[str] = []
    for key, value in doc.items():
        if key in {"occurred_at", "entered_stage_at", "last_touch_at"}:
            found.append(str(value))
        elif isinstance(value, dict):
            found += _times(value)
        elif isinstance(value, list):
            found += [t for item in value if isinstance(item, dict) for t in _times(item)]
    return found


def test_ids_depend_only_on_funnel_contact_and_place_in_the_journey() -> None:
    tp = Touchpoints()
    a, b = _journey("a", tp, 0), _journey("b", tp, 0)  # same times, so any interleaving is in order
    until = T0 + 500 * DAY
    a_first = replay(ALL, [t for pair in zip(a, b, strict=True) for t in pair], until=until)
    b_first = replay(ALL, [t for pair in zip(b, a, strict=True) for t in pair], until=until)
    alone = replay(ALL, a, until=until)
    ids = [o["id"] for o in a_first.outputs]
    assert len(ids) == len(set(ids))
    for contact in ("a", "b"):
        expected = [o["id"] for o in a_first.outputs if o["contact_id"] == contact]
        assert [o["id"] for o in b_first.outputs if o["contact_id"] == contact] == expected
    assert [o["id"] for o in alone.outputs] == [o["id"] for o in a_first.outputs if o["contact_id"] == "a"]
    assert [o["id"] for o in replay(ALL, a, until=until).outputs] == [o["id"] for o in alone.outputs]


def test_ids_differ_between_funnels_and_contacts_with_the_same_sequence() -> None:
    tp = Touchpoints()
    run = replay(["b2b-sales", "aida"], [tp("ad_click", contact="a"), tp("ad_click", contact="b")])
    assert [o["sequence"] for o in run.outputs] == [1, 1, 1, 1]
    assert len({o["id"] for o in run.outputs}) == 4


def test_sequences_number_transitions_and_dropoffs_together_from_one_without_gaps() -> None:
    tp = Touchpoints()
    touches = [
        tp("ad_click"),
        tp("page_view", after=31 * DAY),  # both stall first (aida 14d, b2b 30d); aida -> interest
        tp("form_submitted"),  # b2b -> lead; not an aida type
        tp("unsubscribed"),  # lost in both
        tp("purchase"),  # b2b -> customer, which stalls after 365d; aida -> action (terminal)
    ]
    run = replay(["b2b-sales", "aida"], touches, until=tp.now + 400 * DAY)
    for (_, funnel), outputs in journeys(run.outputs).items():
        assert [o["sequence"] for o in outputs] == list(range(1, len(outputs) + 1)), funnel
    b2b = [brief(o)[3:] for o in journeys(run.outputs)[("c1", "b2b-sales")]]
    assert b2b == [
        (None, "suspect"),
        ("suspect", "stalled"),
        ("suspect", "lead"),
        ("lead", "lost"),
        ("lead", "customer"),
        ("customer", "stalled"),
    ]


@pytest.mark.parametrize(
    "spelling",
    [
        "2024-01-01T02:00:00+02:00",
        "2023-12-31T23:00:00-01:00",
        "2024-01-01t00:00:00z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00.000000-00:00",
    ],
)
def test_times_are_rfc3339_in_utc_with_z_whatever_offset_the_input_used(spelling: str) -> None:
    tp = Touchpoints()
    click = {**tp("ad_click"), "occurred_at": spelling}
    view = {**tp("page_view"), "occurred_at": "2024-01-01T00:30:00.250-01:00"}
    run = replay(["b2b-sales", "aida"], [click, view, tp("unsubscribed", at=T0 + 5 * HOUR)], until=T0 + 60 * DAY)
    assert instant(run.outputs[0]["occurred_at"]) == T0
    assert instant(run.outputs[-1]["recent_touchpoints"][0]["occurred_at"]) == T0
    times = [t for o in run.outputs for t in _times(o)]
    assert len(times) > 10
    assert all(RFC3339_Z.fullmatch(t) for t in times), times


def test_durations_are_never_negative_with_out_of_order_input() -> None:
    tp = Touchpoints()
    touches = [
        tp("form_submitted", at=T0 + 2 * HOUR),
        tp("demo_requested", at=T0),  # before the lead stage was entered
        tp("unsubscribed", at=T0 + HOUR),  # before the prospect stage was entered
    ]
    run = replay(["b2b-sales"], touches)
    assert [brief(o)[3:] for o in run.outputs] == [(None, "lead"), ("lead", "prospect"), ("prospect", "lost")]
    move, lost = run.outputs[1:]
    assert move["time_in_previous_stage_s"] >= 0
    assert move["since_funnel_entry_s"] >= 0
    assert lost["time_in_stage_s"] >= 0
    assert instant(lost["last_touch_at"]) == T0 + 2 * HOUR  # the latest, not the last to arrive


def test_first_touch_is_the_contacts_first_touchpoint_even_one_that_matched_no_stage() -> None:
    tp = Touchpoints()
    touches = [tp("x_unknown", channel="email", campaign="spring"), tp("ad_click"), tp("quote_requested", after=DAY)]
    run = replay(["b2b-sales", "quote-to-deal"], touches)
    transitions = [o for o in run.outputs if o["kind"] == "transition"]
    assert len(transitions) == 3
    for out in transitions:
        first = out["first_touch"]
        assert (first["type"], first["channel"], first["campaign"]) == ("x_unknown", "email", "spring")
        assert instant(first["occurred_at"]) == T0


def test_last_touch_is_the_touchpoint_just_before_the_trigger_or_null() -> None:
    tp = Touchpoints()
    touches = [tp("ad_click"), tp("x_unknown", channel="sms", campaign="c9", after=HOUR), tp("form_submitted")]
    run = replay(["b2b-sales"], touches)
    entry, move = run.outputs
    assert entry["last_touch"] is None
    assert entry["first_touch"]["type"] == "ad_click"
    assert {k: move["last_touch"][k] for k in ("type", "channel", "campaign")} == {
        "type": "x_unknown",
        "channel": "sms",
        "campaign": "c9",
    }
    assert instant(move["last_touch"]["occurred_at"]) == T0 + HOUR


def test_recent_touchpoints_are_the_last_five_oldest_first_including_the_lost_one() -> None:
    tp = Touchpoints()
    kinds = ["ad_click", "page_view", "x_one", "content_view", "x_two", "page_view"]
    touches = [tp(kind, channel=f"ch{i}") for i, kind in enumerate(kinds)] + [tp("deal_lost", channel="crm")]
    run = replay(["b2b-sales"], touches)
    lost = run.outputs[-1]
    assert lost["reason"] == "lost"
    assert [(t["type"], t["channel"]) for t in lost["recent_touchpoints"]] == [
        ("x_one", "ch2"),
        ("content_view", "ch3"),
        ("x_two", "ch4"),
        ("page_view", "ch5"),
        ("deal_lost", "crm"),
    ]
    assert [instant(t["occurred_at"]) for t in lost["recent_touchpoints"]] == [
        instant(t["occurred_at"]) for t in touches[-5:]
    ]
    assert instant(lost["last_touch_at"]) == instant(touches[-1]["occurred_at"])


def test_a_stall_carries_the_touchpoints_seen_before_it_fired() -> None:
    tp = Touchpoints()
    touches = [tp("ad_click"), tp("x_other", after=DAY), tp("form_submitted", after=40 * DAY)]
    run = replay(["b2b-sales"], touches)
    stall = run.steps[2][0]
    assert stall["reason"] == "stalled"
    assert [t["type"] for t in stall["recent_touchpoints"]] == ["ad_click", "x_other"]
    assert instant(stall["last_touch_at"]) == T0 + DAY


def test_for_one_touchpoint_funnels_emit_in_the_configured_order() -> None:
    tp = Touchpoints()
    touches = [tp("quote_requested"), tp("unsubscribed")]
    for order in (["quote-to-deal", "b2b-sales", "aida"], ["aida", "quote-to-deal", "b2b-sales"]):
        run = replay(order, touches)
        assert [o["funnel"] for o in run.steps[0]] == order
        assert [o["funnel"] for o in run.steps[1]] == [f for f in order if f != "quote-to-deal"]
