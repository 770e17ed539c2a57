"""Breakdowns: the metrics per value (processor/worker/breakdownmetrics.py) and `report --by`
(processor/tools/breakdownstats.py), on real engine outputs.

- Every label set exists at 0 from the start, and the series are exactly the count the
  README states, whatever values arrive (10,000 campaigns and 1,000 channels here).
- A stage visit's entry, exit and drop-off count under the value that opened it.
- The worker's counts (from the engine's attributions) are the report's (from outputs
  alone, joined per contact), once the report's values are put in the metrics' buckets.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import breakdowncounts
import orjson
import pytest
from factories import DAY, Touchpoints, replay
from prometheus_client import CollectorRegistry

from processor.cli import main
from processor.config.definitions import PRESETS, load_funnels
from processor.config.settings import Settings
from processor.funnel.codec import decode_state, encode_state
from processor.funnel.definition import Breakdown, Funnel
from processor.funnel.outputs import Output
from processor.funnel.state import Attribution
from processor.funnel.vocabulary import CANONICAL_TYPES, DEFAULT_CHANNELS, NONE, OTHER
from processor.tools.breakdownstats import BY
from processor.worker.breakdownmetrics import LAST_TOUCH_TYPES, BreakdownMetrics, series_count
from processor.worker.metrics import FunnelMetrics
from processor.worker.state.stagecounts import StageCounts

FAMILIES = {
    "funnel_breakdown_entries_total",
    "funnel_breakdown_stage_entries_total",
    "funnel_breakdown_stage_exits_total",
    "funnel_breakdown_dropoffs_total",
}
LAST_TOUCH = "funnel_dropoffs_by_last_touch_total"
CAMPAIGNS = ("brand-search", "spring-launch", "newsletter-weekly")
ALL_THREE = (
    Breakdown("first_channel", DEFAULT_CHANNELS),
    Breakdown("first_campaign", CAMPAIGNS),
    Breakdown("trigger_channel", DEFAULT_CHANNELS),
)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name in FAMILIES | {LAST_TOUCH}
    }


def per_family(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Counter[tuple[str, str, str]]:
    """Series per (funnel, family, breakdown or 'last_touch_type')."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for name, labels in found:
        label = dict(labels)
        counts[label["funnel"], name, label.get("breakdown", "last_touch_type")] += 1
    return counts


def stated(funnels: Sequence[Funnel]) -> dict[tuple[str, str], int]:
    return {(f.name, by): n for f in funnels for by, n in series_count(f).items()}


def counted(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[tuple[str, str], int]:
    totals: Counter[tuple[str, str]] = Counter()
    for (funnel, _, by), n in per_family(found).items():
        totals[funnel, by] += n
    return dict(totals)


def attributed_run(funnels: Sequence[Funnel], docs: Sequence[dict[str, Any]]) -> tuple[list[Output], list[Attribution]]:
    run = replay(funnels, docs, attributed=True, flush=400 * DAY, check=False)  # every stall fires
    outputs, engine = run.produced, run.engine
    attributions = engine.take_attributions()
    assert len(attributions) == len(outputs) and engine.take_attributions() == []
    return outputs, attributions


def test_every_label_set_is_there_at_zero_and_the_series_are_the_stated_count() -> None:
    funnels = load_funnels(PRESETS, Settings().breakdowns)
    registry = CollectorRegistry()
    FunnelMetrics(registry, funnels, StageCounts(funnels))
    found = samples(registry)
    assert set(found.values()) == {0.0}
    assert counted(found) == stated(funnels)
    # The README's figures: b2b-sales with 6 channels (8 values), 5 stages, 4 of them non-terminal.
    b2b = funnels[0]
    assert series_count(b2b) == {"first_channel": 144, "trigger_channel": 144, "last_touch_type": 256}
    assert sum(stated(funnels).values()) == 1920
    labels = {dict(labels)["value"] for name, labels in found if name in FAMILIES}
    assert labels == {*DEFAULT_CHANNELS, OTHER, NONE}
    assert {dict(labels)["last_touch_type"] for name, labels in found if name == LAST_TOUCH} == {
        *CANONICAL_TYPES,
        OTHER,
    }
    # Exits only from stages with a later one; drop-offs only in non-terminal stages.
    exits = {dict(labels)["stage"] for name, labels in found if name == "funnel_breakdown_stage_exits_total"}
    assert "loyal_customer" not in exits and "suspect" in exits
    drops = {dict(labels)["stage"] for name, labels in found if name == "funnel_breakdown_dropoffs_total"}
    assert "loyal_customer" not in drops and "advocacy" not in drops and "won" not in drops


def test_10000_campaigns_and_1000_channels_keep_the_series_at_the_stated_bound() -> None:
    funnels = load_funnels(PRESETS, ALL_THREE)
    registry = CollectorRegistry()
    metrics = FunnelMetrics(registry, funnels, StageCounts(funnels))
    before = samples(registry)
    make = Touchpoints(gap=timedelta(seconds=1))
    docs = []
    for n in range(10_000):
        contact, channel, campaign = f"c{n}", f"channel-{n % 1000}", f"campaign-{n}"
        docs.append(make("ad_click", contact, channel=channel, campaign=campaign))
        docs.append(make(["form_submitted", "cart_add", f"custom-{n}"][n % 3], contact, channel=f"other-{n}"))
        if n % 4 == 0:
            docs.append(make("unsubscribed", contact, channel=channel))
    outputs, attributions = attributed_run(funnels, docs)
    metrics.count(outputs, None, attributions)
    after = samples(registry)
    assert after.keys() == before.keys()  # not one series more
    assert counted(after) == stated(funnels)
    suspect = {"funnel": "b2b-sales", "stage": "suspect"}
    for by in ("first_channel", "first_campaign", "trigger_channel"):
        labels = {**suspect, "breakdown": by, "value": OTHER}
        assert registry.get_sample_value("funnel_breakdown_stage_entries_total", labels) == 10_000, by
    assert sum(after.values()) > 0


def test_a_stage_visit_counts_under_the_value_that_opened_it() -> None:
    [b2b] = load_funnels(["b2b-sales"], ALL_THREE)
    make = Touchpoints(gap=DAY)
    docs = [
        make("ad_click", "a", channel="paid_search", campaign="brand-search"),  # enters suspect via paid_search
        make("page_view", "a", channel="organic"),  # moves nothing
        make("form_submitted", "a", channel="email"),  # suspect -> lead via email
        make("pricing_view", "a", channel="referral"),  # moves nothing; the last touch before the stall
        make("page_view", "b"),  # enters suspect without a channel
        make("newsletter_signup", "b", channel="telegram"),  # suspect -> lead via a channel nobody listed
        make("quote_requested", "b", channel="email"),  # lead -> prospect
        make("unsubscribed", "b", channel="email"),  # lost in prospect; the touch before was quote_requested
    ]
    outputs, attributions = attributed_run([b2b], docs)
    registry = CollectorRegistry()
    metrics = BreakdownMetrics([b2b])
    registry.register(metrics)
    metrics.count(outputs, attributions)
    got = {
        (dict(labels).get("stage"), name.removeprefix("funnel_").removesuffix("_total"), *rest): n
        for (name, labels), n in samples(registry).items()
        if n
        for rest in [[dict(labels).get(key) for key in ("reason", "breakdown", "value", "last_touch_type")]]
    }
    assert got == {
        # a: first touch paid_search / brand-search
        (None, "breakdown_entries", None, "first_channel", "paid_search", None): 1,
        (None, "breakdown_entries", None, "first_campaign", "brand-search", None): 1,
        (None, "breakdown_entries", None, "trigger_channel", "paid_search", None): 1,
        ("suspect", "breakdown_stage_entries", None, "first_channel", "paid_search", None): 1,
        ("suspect", "breakdown_stage_entries", None, "first_campaign", "brand-search", None): 1,
        ("suspect", "breakdown_stage_entries", None, "trigger_channel", "paid_search", None): 1,
        ("suspect", "breakdown_stage_exits", None, "first_channel", "paid_search", None): 1,
        ("suspect", "breakdown_stage_exits", None, "first_campaign", "brand-search", None): 1,
        ("suspect", "breakdown_stage_exits", None, "trigger_channel", "paid_search", None): 1,  # not email
        ("lead", "breakdown_stage_entries", None, "first_channel", "paid_search", None): 1,
        ("lead", "breakdown_stage_entries", None, "first_campaign", "brand-search", None): 1,
        ("lead", "breakdown_stage_entries", None, "trigger_channel", "email", None): 1,
        ("lead", "breakdown_dropoffs", "stalled", "first_channel", "paid_search", None): 1,
        ("lead", "breakdown_dropoffs", "stalled", "first_campaign", "brand-search", None): 1,
        ("lead", "breakdown_dropoffs", "stalled", "trigger_channel", "email", None): 1,
        ("lead", "dropoffs_by_last_touch", "stalled", None, None, "pricing_view"): 1,
        # b: no first channel or campaign; into lead through an unlisted channel
        (None, "breakdown_entries", None, "first_channel", NONE, None): 1,
        (None, "breakdown_entries", None, "first_campaign", NONE, None): 1,
        (None, "breakdown_entries", None, "trigger_channel", NONE, None): 1,
        ("suspect", "breakdown_stage_entries", None, "first_channel", NONE, None): 1,
        ("suspect", "breakdown_stage_entries", None, "first_campaign", NONE, None): 1,
        ("suspect", "breakdown_stage_entries", None, "trigger_channel", NONE, None): 1,
        ("suspect", "breakdown_stage_exits", None, "first_channel", NONE, None): 1,
        ("suspect", "breakdown_stage_exits", None, "first_campaign", NONE, None): 1,
        ("suspect", "breakdown_stage_exits", None, "trigger_channel", NONE, None): 1,
        ("lead", "breakdown_stage_entries", None, "first_channel", NONE, None): 1,
        ("lead", "breakdown_stage_entries", None, "first_campaign", NONE, None): 1,
        ("lead", "breakdown_stage_entries", None, "trigger_channel", OTHER, None): 1,
        ("lead", "breakdown_stage_exits", None, "first_channel", NONE, None): 1,
        ("lead", "breakdown_stage_exits", None, "first_campaign", NONE, None): 1,
        ("lead", "breakdown_stage_exits", None, "trigger_channel", OTHER, None): 1,
        ("prospect", "breakdown_stage_entries", None, "first_channel", NONE, None): 1,
        ("prospect", "breakdown_stage_entries", None, "first_campaign", NONE, None): 1,
        ("prospect", "breakdown_stage_entries", None, "trigger_channel", "email", None): 1,
        ("prospect", "breakdown_dropoffs", "lost", "first_channel", NONE, None): 1,
        ("prospect", "breakdown_dropoffs", "lost", "first_campaign", NONE, None): 1,
        ("prospect", "breakdown_dropoffs", "lost", "trigger_channel", "email", None): 1,
        ("prospect", "dropoffs_by_last_touch", "lost", None, None, "quote_requested"): 1,
    }


def test_a_type_outside_the_canonical_vocabulary_is_other_as_a_last_touch() -> None:
    [funnel] = load_funnels(["quote-to-deal"])
    make = Touchpoints(gap=DAY)
    outputs, attributions = attributed_run([funnel], [make("quote_requested", "a"), make("email_opened", "a")])
    metrics = BreakdownMetrics([funnel])
    registry = CollectorRegistry()
    registry.register(metrics)
    metrics.count(outputs, attributions)
    labels = {"funnel": "quote-to-deal", "stage": "request", "reason": "stalled"}
    assert registry.get_sample_value(LAST_TOUCH + "", {**labels, "last_touch_type": OTHER}) == 1
    assert LAST_TOUCH_TYPES[-1] == OTHER and len(LAST_TOUCH_TYPES) == 32


def test_a_state_stored_before_breakdowns_is_read_with_its_visits_channel_unknown() -> None:
    [funnel] = load_funnels(["quote-to-deal"])
    state = replay([funnel], [Touchpoints()("quote_requested", "a", channel="email")]).engine.store["a"]
    assert state.positions["quote-to-deal"].trigger_channel == "email"
    assert decode_state(encode_state(state)) == state
    version_1 = orjson.loads(encode_state(state))
    version_1[0] = 1
    version_1[7] = {name: position[:5] for name, position in version_1[7].items()}
    old = decode_state(orjson.dumps(version_1))
    assert old.positions["quote-to-deal"] == state.positions["quote-to-deal"]._replace(trigger_channel=None)
    assert orjson.loads(encode_state(old))[0] == 2


# --- the worker's counts are the report's


def test_the_worker_counts_per_value_are_the_reports_on_simulated_traffic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "touchpoints.jsonl"
    presets = [arg for name in PRESETS for arg in ("--funnel", name)]
    options = ["--touchpoints", "6000", "--seed", "4", "--days", "20", "--end", "2025-01-01T00:00:00Z"]
    factors = ["--channel-conversion", "referral=1.8", "--channel-conversion", "paid_search=0.5"]
    assert main(["simulate", *presets, *options, *factors, "--output", str(path)]) == 0
    funnels = load_funnels(PRESETS, ALL_THREE)
    docs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    outputs, attributions = attributed_run(funnels, docs)
    (tmp_path / "outputs.jsonl").write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in outputs))
    registry = CollectorRegistry()
    metrics = BreakdownMetrics(funnels)
    registry.register(metrics)
    metrics.count(outputs, attributions)
    found = [(name, dict(labels), value) for (name, labels), value in samples(registry).items()]
    listed = {b.by: b.values for b in ALL_THREE} | {"last_touch_type": ()}
    capsys.readouterr()
    for by in BY:
        assert main(["report", "--input", str(tmp_path / "outputs.jsonl"), "--by", by, "--format", "json"]) == 0
        expected = breakdowncounts.from_report(orjson.loads(capsys.readouterr().out), by, listed[by])
        assert breakdowncounts.from_samples(found, by) == expected, by
        assert len(expected) > 40, by
    kinds = Counter((o["kind"], o.get("reason")) for o in outputs)
    assert kinds["dropoff", "lost"] and kinds["dropoff", "stalled"] and any(o.get("reactivated") for o in outputs)


@pytest.mark.parametrize("by", BY)
def test_report_by_shows_a_table_per_value(by: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [b2b] = load_funnels(["b2b-sales"])
    make = Touchpoints(gap=DAY)
    docs = [
        make("ad_click", "a", channel="paid_search", campaign="brand-search"),
        make("form_submitted", "a", channel="email"),
        make("page_view", "b", channel="organic"),
        make("unsubscribed", "b", channel="email"),
    ]
    outputs, _ = attributed_run([b2b], docs)
    path = tmp_path / "outputs.jsonl"
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in outputs))
    assert main(["report", "--funnel", "b2b-sales", "--input", str(path), "--by", by, "--format", "json"]) == 0
    [funnel] = orjson.loads(capsys.readouterr().out)["funnels"]
    shown = {item["value"]: item for item in funnel["by"]["values"]}
    assert funnel["by"]["breakdown"] == by and funnel["by"]["left_out"] == 0
    if by == "last_touch_type":
        # a stalled in lead after form_submitted; b was lost in suspect after page_view
        assert {value: item["dropoffs"] for value, item in shown.items()} == {"form_submitted": 1, "page_view": 1}
        assert shown["page_view"]["stages"][0] == {"stage": "suspect", "stalled": 0, "lost": 1}
        return
    first = {"first_channel": ("paid_search", "organic"), "first_campaign": ("brand-search", None)}
    a, b = first.get(by, ("paid_search", "organic"))
    # a moved into lead via email: no entry at the top
    moved: dict[str | None, int] = {"email": 0} if by == "trigger_channel" else {}
    entries: dict[str | None, int] = {a: 1, b: 1, **moved}
    assert {value: item["entries"] for value, item in shown.items()} == entries
    assert shown[a]["stages"][0]["converted"] == 1 and shown[b]["stages"][0]["lost"] == 1
    assert shown[a]["planning"]["stage"] == "loyal_customer"
    assert main(["report", "--funnel", "b2b-sales", "--input", str(path), "--by", by]) == 0
    text = capsys.readouterr().out
    assert f"b2b-sales, {by} {a or '(none)'}: 1 entry" in text and f"b2b-sales, {by} {b or '(none)'}: 1 entry" in text


def test_report_by_leaves_out_what_the_input_cannot_attribute(capsys: pytest.CaptureFixture[str]) -> None:
    [b2b] = load_funnels(["b2b-sales"])
    make = Touchpoints(gap=DAY)
    outputs, _ = attributed_run([b2b], [make("ad_click", "a", channel="email"), make("unsubscribed", "a")])
    dropoffs = [o for o in outputs if o["kind"] == "dropoff"]  # its transition is not in the input
    stdin = io.BytesIO(b"".join(orjson.dumps(o) + b"\n" for o in dropoffs))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.TextIOWrapper(stdin))
        assert main(["report", "--funnel", "b2b-sales", "--by", "trigger_channel"]) == 0
    out = capsys.readouterr().out
    assert "(b2b-sales by trigger_channel: 1 record left out: the transition into their stage is not in the input)" in (
        out
    )
