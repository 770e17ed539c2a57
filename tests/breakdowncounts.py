"""Breakdown counts two ways, in one shape, for tests that hold them equal.

`report --by` (its JSON) keeps every value as it came; the worker's metrics put values
in bounded buckets (a breakdown's listed values, `other`, `none`; canonical touchpoint
types and `other`). `from_report` buckets the report's figures as the metrics do, and
`from_samples` reads metric samples; both give counts keyed (family, funnel, stage,
reason, label), zeros left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from processor.funnel.vocabulary import CANONICAL_TYPES, NONE, OTHER

Key = tuple[str, str, str, str, str]
FAMILIES = {
    "funnel_breakdown_entries_total": "entries",
    "funnel_breakdown_stage_entries_total": "stage_entries",
    "funnel_breakdown_stage_exits_total": "exits",
    "funnel_breakdown_dropoffs_total": "dropoffs",
    "funnel_dropoffs_by_last_touch_total": "dropoffs",
}


def bucket(by: str, value: str | None, listed: Sequence[str]) -> str:
    """A report value as the metrics label it; `listed`: the breakdown's configured values."""
    if by == "last_touch_type":
        return value if value in CANONICAL_TYPES else OTHER
    if value is None:
        return NONE
    return value if value in listed else OTHER


def from_report(figures: Mapping[str, Any], by: str, listed: Sequence[str]) -> Counter[Key]:
    """Counts from `report --by BY --format json`."""
    counts: Counter[Key] = Counter()
    for funnel in figures["funnels"]:
        name = funnel["funnel"]
        assert funnel["by"]["breakdown"] == by and funnel["by"]["left_out"] == 0, name
        for item in funnel["by"]["values"]:
            label = bucket(by, item["value"], listed)
            if by != "last_touch_type":
                counts["entries", name, "", "", label] += item["entries"]
            for row in item["stages"]:
                for reason in ("stalled", "lost"):
                    counts["dropoffs", name, row["stage"], reason, label] += row[reason]
                if by != "last_touch_type":
                    counts["stage_entries", name, row["stage"], "", label] += row["entered"]
                    counts["exits", name, row["stage"], "", label] += row["converted"]
    return +counts


def from_samples(samples: Iterable[tuple[str, Mapping[str, str], float]], by: str) -> Counter[Key]:
    """Counts from (family, labels, value) samples of the breakdown families, for breakdown BY."""
    counts: Counter[Key] = Counter()
    for name, labels, value in samples:
        if name not in FAMILIES or labels.get("breakdown", "last_touch_type") != by:
            continue
        label = labels["value"] if "value" in labels else labels["last_touch_type"]
        key = (FAMILIES[name], labels["funnel"], labels.get("stage", ""), labels.get("reason", ""), label)
        counts[key] += int(value)
    return +counts


def conversion(counts: Counter[Key], last_stages: set[tuple[str, str]]) -> dict[tuple[str, str, str], float]:
    """(funnel, stage, label) -> exits / stage entries, where anybody entered and can move on (not
    a funnel's last stage)."""
    exits = {(f, s, v): n for (family, f, s, _, v), n in counts.items() if family == "exits"}
    rates = {}
    for (family, funnel, stage, _, label), entered in counts.items():
        if family == "stage_entries" and entered and (funnel, stage) not in last_stages:
            rates[funnel, stage, label] = exits.get((funnel, stage, label), 0) / entered
    return rates
