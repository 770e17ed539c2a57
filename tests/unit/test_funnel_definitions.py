"""Loading funnels: every error names the file, the field and the problem; presets match the SPEC."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.config.definitions import PRESETS, load_file, load_funnels, load_preset
from processor.funnel.definition import DefinitionError, Funnel

DROP = object()  # marks a key to leave out


def funnel_doc(**changes: Any) -> dict[str, Any]:
    """A small valid funnel with top-level keys changed (or dropped with DROP)."""
    doc: dict[str, Any] = {
        "name": "trial",
        "stages": ["visitor", "trial", "paying"],
        "rules": [
            {"stage": "visitor", "type": "page_view"},
            {"stage": "trial", "type": "form_submitted"},
            {"stage": "paying", "type": "purchase"},
        ],
        "lost": [{"type": "unsubscribed"}],
        "stall_after": {"visitor": "14d", "trial": "7d"},
        "terminal": ["paying"],
    }
    for key, value in changes.items():
        if value is DROP:
            del doc[key]
        else:
            doc[key] = value
    return doc


def write(directory: Path, doc: Any, filename: str = "funnel.json") -> Path:
    path = directory / filename
    path.write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))
    return path


def refusal(path: Path) -> DefinitionError:
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    return info.value


def test_the_base_document_loads(tmp_path: Path) -> None:
    funnel = load_file(write(tmp_path, funnel_doc()))
    assert funnel.stages == ("visitor", "trial", "paying")


RULES = funnel_doc()["rules"]

# (changes, field named, problem as a regular expression)
REFUSED = {
    "no-stages": ({"stages": DROP}, "", r"'stages' is a required property"),
    "empty-stages": ({"stages": []}, "stages", r"non-empty|too short"),
    "duplicate-stage-names": (
        {"stages": ["visitor", "trial", "visitor", "paying"]},
        "stages[2]",
        r"duplicate stage name 'visitor'",
    ),
    "rule-naming-an-unknown-stage": (
        {"rules": [*RULES, {"stage": "payng", "type": "purchase", "nth": 2}]},
        "rules[3].stage",
        r"unknown stage 'payng'",
    ),
    "stall-after-naming-an-unknown-stage": (
        {"stall_after": {"visitor": "14d", "trail": "7d"}},
        "stall_after.trail",
        r"unknown stage 'trail'",
    ),
    "terminal-naming-an-unknown-stage": ({"terminal": ["payed"]}, "terminal[0]", r"unknown stage 'payed'"),
    "negative-duration-text": ({"stall_after": {"visitor": "-3d"}}, "stall_after.visitor", r"positive.*'-3d'"),
    "negative-duration-number": ({"stall_after": {"trial": -5}}, "stall_after.trial", r"positive.*-5"),
    "zero-duration-text": ({"stall_after": {"visitor": "0d"}}, "stall_after.visitor", r"positive.*'0d'"),
    "zero-duration-number": ({"stall_after": {"visitor": 0}}, "stall_after.visitor", r"positive.*0"),
    "stall-on-a-terminal-stage": (
        {"stall_after": {"visitor": "14d", "paying": "30d"}},
        "stall_after.paying",
        r"terminal stage cannot stall",
    ),
    "stage-no-rule-leads-into": ({"rules": [RULES[0], RULES[2]]}, "rules", r"no rule leads into stage 'trial'"),
    "lost-rule-with-a-stage": (
        {"lost": [{"type": "unsubscribed", "stage": "trial"}]},
        "lost[0].stage",
        r"^unknown field; the fields here are type, channel, properties$",
    ),
    "unknown-top-level-field": (
        {"colour": "teal"},
        "colour",
        r"^unknown field; the fields here are name, description, stages, rules, lost, stall_after, terminal, "
        r"breakdowns, renamed_from, removed$",
    ),
    # A misspelt field gets a did-you-mean, as a misspelt FUNNEL_* variable does.
    "misspelt-top-level-field": (
        {"stal_after": {"visitor": "14d"}},
        "stal_after",
        r"^unknown field; did you mean 'stall_after'\?$",
    ),
    "misspelt-rule-field": (
        {"rules": [*RULES[:2], {**RULES[2], "chanel": "web"}]},
        "rules[2].chanel",
        r"^unknown field; did you mean 'channel'\?$",
    ),
    "misspelt-operator": (
        {"rules": [*RULES[:2], {**RULES[2], "properties": {"amount": {"gtee": 5}}}]},
        "rules[2].properties.amount.gtee",
        r"^unknown field; did you mean 'gte'\?$",
    ),
    # A bad duration says which forms are accepted, never the schema's regular expression.
    "duration-in-words": (
        {"stall_after": {"visitor": "14 days"}},
        "stall_after.visitor",
        r"^'14 days' is not a duration: write a number and a unit, as in 30d, 12h, 90m, 45s or 2w",
    ),
    "duration-unknown-unit": ({"stall_after": {"visitor": "3y"}}, "stall_after.visitor", r"^'3y' is not a duration"),
    "duration-of-the-wrong-type": (
        {"stall_after": {"visitor": True}},
        "stall_after.visitor",
        r"^True is not a duration",
    ),
    "rule-nth-zero": (
        {"rules": [*RULES, {"stage": "paying", "type": "purchase", "nth": 0}]},
        "rules[3].nth",
        r"minimum",
    ),
    "bad-funnel-name": ({"name": "Trial Funnel"}, "name", r"^'Trial Funnel' is not a funnel name: lower-case"),
    # Python's `$` also matches before a final newline; the patterns must not.
    "funnel-name-ending-in-newline": ({"name": "trial\n"}, "name", r"is not a funnel name"),
    "stage-name-ending-in-newline": ({"stages": ["visitor", "trial\n", "paying"]}, "stages[1]", r"is not a stage name"),
    "bad-stage-name-in-stall-after": (
        {"stall_after": {"Visitor": "14d"}},
        "stall_after",
        r"^'Visitor' is not a stage name",
    ),
    # Breakdowns (schema 1-1-0): known ones, bounded value lists, no reserved label listed.
    "unknown-breakdown": (
        {"breakdowns": {"first_chanel": {}}},
        "breakdowns.first_chanel",
        r"^unknown field; did you mean 'first_channel'\?$",
    ),
    "campaign-breakdown-without-values": (
        {"breakdowns": {"first_campaign": {}}},
        "breakdowns.first_campaign",
        r"'values' is a required property",
    ),
    "breakdown-listing-other": (
        {"breakdowns": {"trigger_channel": {"values": ["email", "other"]}}},
        "breakdowns.trigger_channel.values[1]",
        r"^'other' is a label of its own \(any other value, a missing value\): do not list it$",
    ),
    "breakdown-listing-a-value-twice": (
        {"breakdowns": {"first_channel": {"values": ["email", "email"]}}},
        "breakdowns.first_channel.values",
        r"non-unique",
    ),
    "breakdown-with-51-values": (
        {"breakdowns": {"first_channel": {"values": [f"c{n}" for n in range(51)]}}},
        "breakdowns.first_channel.values",
        r"too long",
    ),
}


@pytest.mark.parametrize(("changes", "where", "problem"), REFUSED.values(), ids=REFUSED.keys())
def test_refusal_names_the_file_the_field_and_the_problem(
    tmp_path: Path, changes: dict[str, Any], where: str, problem: str
) -> None:
    path = write(tmp_path, funnel_doc(**changes))
    error = refusal(path)
    assert (error.source, error.where) == (str(path), where)
    assert re.search(problem, error.problem), error.problem
    message = str(error)
    assert message.startswith(str(path))
    assert where in message
    assert error.problem in message


def test_breakdowns_are_read_in_one_order_and_a_channel_breakdown_has_default_values(tmp_path: Path) -> None:
    spec = {"trigger_channel": {"values": ["web", "sales"]}, "first_channel": {}, "first_campaign": {"values": ["q3"]}}
    funnel = load_file(write(tmp_path, funnel_doc(breakdowns=spec)))
    assert [(b.by, b.values) for b in funnel.breakdowns] == [
        ("first_channel", ("organic", "paid_search", "email", "direct", "referral", "social")),
        ("first_campaign", ("q3",)),
        ("trigger_channel", ("web", "sales")),
    ]
    assert funnel.breakdowns[2].labels == ("web", "sales", "other", "none")
    assert load_file(write(tmp_path, funnel_doc())).breakdowns == ()


def test_every_duration_form_the_error_names_is_accepted(tmp_path: Path) -> None:
    expected_s = {"30d": 30 * 86400, "12h": 43200, "90m": 5400, "45s": 45, "2w": 14 * 86400, "1.5h": 5400, 3600: 3600}
    for given, seconds in expected_s.items():
        funnel = load_file(write(tmp_path, funnel_doc(stall_after={"visitor": given})))
        assert funnel.stall_after[0] == seconds * 1_000_000, given


def test_the_command_line_shows_the_refusal_in_one_line_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, funnel_doc(stall_after={"visitor": "14 days"}, stal_after={}))
    result = subprocess.run(
        [sys.executable, "-m", "processor", "replay", "--funnel-file", str(path), "--input", "-"],
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode() == (
        f"funnel-processor: funnel definition refused: {path}: stal_after: unknown field; did you mean 'stall_after'?\n"
    )
    path = write(tmp_path, funnel_doc(stall_after={"visitor": "14 days"}))
    result = subprocess.run(
        [sys.executable, "-m", "processor", "replay", "--funnel-file", str(path), "--input", "-"],
        input=b"",
        capture_output=True,
        timeout=60,
        check=False,
    )
    message = result.stderr.decode()
    assert result.returncode == 2 and message.count("\n") == 1, message
    assert f"{path}: stall_after.visitor: '14 days' is not a duration:" in message
    assert "30d, 12h, 90m, 45s or 2w" in message and "[0-9]" not in message  # the forms, not a regex


def test_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b'{"name": "trial", "stages": [')
    error = refusal(path)
    assert (error.source, error.where) == (str(path), "")
    assert "not valid JSON" in error.problem


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    error = refusal(path)
    assert (error.source, error.where) == (str(path), "")
    assert "cannot read" in error.problem
    assert str(error).startswith(str(path))


def test_two_funnels_with_the_same_name_are_refused(tmp_path: Path) -> None:
    first = write(tmp_path, funnel_doc(), "first.json")
    second = write(tmp_path, funnel_doc(stall_after={}), "second.json")
    with pytest.raises(DefinitionError) as info:
        load_funnels([str(first), str(second)])
    assert (info.value.source, info.value.where) == (str(second), "name")
    assert "'trial'" in info.value.problem


def test_a_file_cannot_reuse_a_preset_name(tmp_path: Path) -> None:
    path = write(tmp_path, funnel_doc(name="aida"), "my-aida.json")
    with pytest.raises(DefinitionError) as info:
        load_funnels(["aida", str(path)])
    assert (info.value.source, info.value.where) == (str(path), "name")


def test_the_same_preset_twice_is_refused() -> None:
    with pytest.raises(DefinitionError):
        load_funnels(["b2b-sales", "b2b-sales"])


def test_unknown_preset_is_refused_with_the_choices() -> None:
    with pytest.raises(DefinitionError) as info:
        load_preset("b2c-sales")
    assert "b2c-sales" in str(info.value)
    assert all(name in info.value.problem for name in PRESETS)


# --- presets, written out by hand from the SPEC's "Built-in funnels" section.
# Each stage lists its touchpoint types as the SPEC writes them ("purchase nth=2").

SPEC_PRESETS: dict[str, dict[str, Any]] = {
    "b2b-sales": {
        "stages": {
            "suspect": ["ad_impression", "ad_click", "social_engagement", "page_view", "content_view"],
            "lead": [
                "form_submitted",
                "info_requested",
                "newsletter_signup",
                "content_download",
                "engaged_visit",
                "webinar_attended",
            ],
            "prospect": ["lead_qualified", "meeting_held", "demo_requested", "quote_requested"],
            "customer": ["purchase", "quote_accepted"],
            "loyal_customer": ["purchase nth=2"],
        },
        "terminal": "loyal_customer",
        "lost": ["deal_lost", "unsubscribed"],
        "stall_days": {"suspect": 30, "lead": 30, "prospect": 60, "customer": 365},
    },
    "aida": {
        "stages": {
            "awareness": ["ad_impression", "ad_click", "social_engagement"],
            "interest": ["page_view", "content_view", "engaged_visit", "newsletter_signup", "content_download"],
            "desire": [
                "product_view",
                "pricing_view",
                "comparison_view",
                "cart_add",
                "demo_requested",
                "quote_requested",
            ],
            "action": ["purchase"],
        },
        "terminal": "action",
        "lost": ["unsubscribed"],
        "stall_days": {"awareness": 14, "interest": 14, "desire": 7},
    },
    "customer-journey": {
        "stages": {
            "awareness": ["ad_impression", "ad_click", "social_engagement", "page_view", "content_view"],
            "consideration": [
                "product_view",
                "pricing_view",
                "comparison_view",
                "cart_add",
                "demo_requested",
                "form_submitted",
                "info_requested",
            ],
            "purchase": ["purchase"],
            "service": ["order_delivered", "support_contacted", "complaint_resolved"],
            "advocacy": ["review_posted", "referral_made", "purchase nth=2"],
        },
        "terminal": "advocacy",
        "lost": ["unsubscribed"],
        "stall_days": {"awareness": 30, "consideration": 30, "purchase": 30, "service": 180},
    },
    "quote-to-deal": {
        "stages": {
            "request": ["quote_requested"],
            "briefing": ["briefing_held"],
            "proposal": ["quote_sent"],
            "won": ["quote_accepted"],
        },
        "terminal": "won",
        "lost": ["quote_rejected", "deal_lost"],
        "stall_days": {"request": 7, "briefing": 14, "proposal": 30},
    },
}
US_PER_DAY = 86_400 * 1_000_000


def entered_by(funnel: Funnel) -> dict[str, list[str]]:
    """Per stage, the rules that lead into it, written the SPEC's way."""
    out: dict[str, list[str]] = {stage: [] for stage in funnel.stages}
    for rule in funnel.rules:
        assert rule.channels is None and rule.properties == ()  # the SPEC's presets test only types
        out[funnel.stages[rule.stage]].append(rule.type if rule.nth == 1 else f"{rule.type} nth={rule.nth}")
    return out


def test_presets_are_the_specs_in_its_order() -> None:
    assert list(PRESETS) == list(SPEC_PRESETS)


@pytest.mark.parametrize("name", SPEC_PRESETS)
def test_preset_matches_the_spec(name: str) -> None:
    spec = SPEC_PRESETS[name]
    funnel = load_preset(name)
    assert funnel.name == name
    assert list(funnel.stages) == list(spec["stages"])
    assert {stage: sorted(types) for stage, types in entered_by(funnel).items()} == {
        stage: sorted(types) for stage, types in spec["stages"].items()
    }
    assert [stage for stage, terminal in zip(funnel.stages, funnel.terminal, strict=True) if terminal] == [
        spec["terminal"]
    ]
    assert sorted(rule.type for rule in funnel.lost) == sorted(spec["lost"])
    assert all(rule.nth == 1 and rule.channels is None and rule.properties == () for rule in funnel.lost)
    stalls = {stage: us / US_PER_DAY for stage, us in zip(funnel.stages, funnel.stall_after, strict=True) if us}
    assert stalls == spec["stall_days"]
