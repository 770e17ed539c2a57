"""The versioned schemas are sound, their golden examples hold, and the code conforms.

Examples live beside each schema (schemas/<name>/examples/{valid,invalid}/*.json) and are
checked against the current version of that schema.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from factories import replay, touchpoint
from jsonschema import Draft202012Validator

from processor.config.definitions import PRESET_DIR, PRESETS
from processor.config.schemas import CURRENT, SCHEMA_DIR, first_error, schema_path, validator
from processor.funnel.deadletter import dead_letter, file_source, topic_source
from processor.funnel.outputs import DroppedOff, RecentTouch, StageTransitioned, TouchSummary, Trigger
from processor.funnel.touchpoint import REASONS, from_dict

NAMES = sorted(CURRENT)
MIN_EXAMPLES = 3  # of each kind, per schema, so the example tests cannot pass on an empty folder
# Every published version file and the SHA-256 of its bytes. A published file is never edited
# (schemas/README.md): publishing a version adds its line here, and no line ever changes.
PUBLISHED = {
    "deadletter/1-0-0": "86a0f30dbffb3f975fc2aeb4c65f3743e5d11e96612e012798c6567b5f011a91",
    "deadletter/1-0-1": "b0ece5649569da2c083f49e4729b72e5573f1f5e148be4b9929b8c1895c86625",
    "dropoff/1-0-0": "6c3ac53f40c60feceb784714f672a1681d3110facfa3de70839fb99545abadfa",
    "event-mapping/1-0-0": "9e3d8661f32b2d073c4e9fe718d583c6a4cf3060b6a243c3d06e0ce21b769255",
    "funnel-definition/1-0-0": "4d2f22cb43c8d80c6e793f35804b5f607e704846dbd5f275a869997151b4632f",
    "funnel-definition/1-1-0": "99301db555c4da287b96030dd39a7ecb5a8dfaa47cbb0f3039423ce37f207841",
    "funnel-definition/1-2-0": "1228c5532f2d8974bdf75660894e8b6e002fcb8da856b9ce2ae779c710270eb7",
    "segment-event/1-0-0": "48422cb2e02d577f2098a295aa78d26846b824d90efe147106c32fd74018dd64",
    "snowplow-event/1-0-0": "8b33387113a759ae0c7bdf1028a2c7a67e6786cb690977a52fccd9fc7aaf8602",
    "touchpoint/1-0-0": "cede05ac04d2a09bcdaae4a26cab67bc6e96d546b46dd7a7586ddebfa11d7228",
    "touchpoint/1-1-0": "aac480ba80b53fd27e13fff4a9f94a8cde419626f1fd5e4f9b22fab344cf5f1f",
    "transition/1-0-0": "385411cef95176c95c8b7d77a445b6021b658846ba6c456d6a3a99d86d4d41a6",
}


def load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def examples(kind: str) -> list[Any]:
    return [
        pytest.param(name, path, id=f"{name}/{kind}/{path.stem}")
        for name in NAMES
        for path in sorted((SCHEMA_DIR / name / "examples" / kind).glob("*.json"))
    ]


# --- the schema files and their versions


def test_current_names_an_existing_file_for_every_schema() -> None:
    on_disk = {path.parent.parent.name for path in SCHEMA_DIR.glob("*/jsonschema/*.json")}
    assert set(CURRENT) == on_disk
    for name, version in CURRENT.items():
        assert re.fullmatch(r"[1-9][0-9]*-(0|[1-9][0-9]*)-(0|[1-9][0-9]*)", version), name
        assert schema_path(name).is_file(), name


def schemaver(version: str) -> tuple[int, ...]:
    """'1-10-0' -> (1, 10, 0): versions compare by number, not as text."""
    return tuple(int(part) for part in version.split("-"))


@pytest.mark.parametrize("name", NAMES)
def test_current_is_the_newest_version_on_disk(name: str) -> None:
    """A new version file cannot be added without the code moving to it (or the other way round)."""
    versions = [path.stem for path in (SCHEMA_DIR / name / "jsonschema").glob("*.json")]
    assert max(versions, key=schemaver) == CURRENT[name]


def test_published_version_files_are_never_edited() -> None:
    on_disk = {
        f"{path.parent.parent.name}/{path.stem}": hashlib.sha256(path.read_bytes()).hexdigest()
        for path in SCHEMA_DIR.glob("*/jsonschema/*.json")
    }
    assert on_disk.keys() == PUBLISHED.keys(), "a version file was added or removed: list it in PUBLISHED"
    edited = sorted(name for name, digest in on_disk.items() if PUBLISHED[name] != digest)
    assert not edited, f"published schema files were edited: {edited}; add a new version instead"


def test_a_new_version_keeps_or_extends_the_one_before() -> None:
    """The versions added by issue 17: touchpoint 1-1-0 only limits two strings (a REVISION);
    deadletter 1-0-1 only adds a reason (an ADDITION: every 1-0-0 dead letter stays valid).
    Issue 14: funnel-definition 1-1-0 only adds the optional `breakdowns` (an ADDITION).
    Issue 12: funnel-definition 1-2-0 only adds the optional `renamed_from` and `removed` (an ADDITION)."""

    def without(doc: dict[str, Any], *paths: str) -> dict[str, Any]:
        for path in ("$id", "description", *paths):
            *parents, leaf = path.split("/")
            node = doc
            for part in parents:
                node = node[part]
            del node[leaf]
        return doc

    old, new = load(schema_path("touchpoint", "1-0-0")), load(schema_path("touchpoint", "1-1-0"))
    assert (new["properties"]["channel"]["maxLength"], new["properties"]["campaign"]["maxLength"]) == (64, 256)
    text = [f"properties/{field}/description" for field in ("channel", "campaign")]
    limits = [f"properties/{field}/maxLength" for field in ("channel", "campaign")]
    assert without(new, *text, *limits) == without(old, *text)
    old, new = load(schema_path("deadletter", "1-0-0")), load(schema_path("deadletter", "1-0-1"))
    assert new["properties"]["reason"]["enum"] == [*old["properties"]["reason"]["enum"], "future_timestamp"]
    assert without(new, "properties/reason") == without(old, "properties/reason")
    old, new = load(schema_path("funnel-definition", "1-0-0")), load(schema_path("funnel-definition", "1-1-0"))
    added = ["properties/breakdowns", *(f"$defs/{name}" for name in ("breakdown_value", "channel_breakdown"))]
    assert without(new, *added, "$defs/campaign_breakdown") == without(old)
    assert "breakdowns" not in new["required"]
    for path in sorted((SCHEMA_DIR / "funnel-definition" / "examples" / "valid").glob("*.json")):
        if not {"breakdowns", "renamed_from", "removed"} & load(path).keys():
            assert not list(validator("funnel-definition", "1-0-0").iter_errors(load(path))), path.name
    old, new = load(schema_path("funnel-definition", "1-1-0")), load(schema_path("funnel-definition", "1-2-0"))
    assert without(new, "properties/renamed_from", "properties/removed") == without(old)
    assert {"renamed_from", "removed"}.isdisjoint(new["required"])
    for path in sorted((SCHEMA_DIR / "funnel-definition" / "examples" / "valid").glob("*.json")):
        if not {"renamed_from", "removed"} & load(path).keys():
            assert not list(validator("funnel-definition", "1-1-0").iter_errors(load(path))), path.name


@pytest.mark.parametrize("name", NAMES)
def test_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    schema = load(schema_path(name))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{name}/jsonschema/{CURRENT[name]}")
    assert schema["title"] and schema["description"]
    assert schema["required"]


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*/jsonschema/*.json")), ids=lambda p: p.parent.parent.name)
def test_every_version_file_is_a_valid_schema_whose_id_is_its_path(path: Path) -> None:
    schema = load(path)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{path.parent.parent.name}/jsonschema/{path.stem}")


@pytest.mark.parametrize("name", ["transition", "dropoff", "deadletter", "funnel-definition", "event-mapping"])
def test_closed_schemas_refuse_unknown_fields(name: str) -> None:
    assert load(schema_path(name))["additionalProperties"] is False


def test_touchpoint_schema_accepts_unknown_fields() -> None:
    assert load(schema_path("touchpoint")).get("additionalProperties", True) is True


@pytest.mark.parametrize("name", ["segment-event", "snowplow-event"])
def test_the_other_input_formats_accept_the_many_fields_they_are_not_read_for(name: str) -> None:
    assert load(schema_path(name))["additionalProperties"] is True


# --- golden examples


@pytest.mark.parametrize("name", NAMES)
def test_each_schema_has_golden_examples_of_both_kinds(name: str) -> None:
    for kind in ("valid", "invalid"):
        assert len(list((SCHEMA_DIR / name / "examples" / kind).glob("*.json"))) >= MIN_EXAMPLES, (name, kind)


@pytest.mark.parametrize(("name", "path"), examples("valid"))
def test_valid_example_validates(name: str, path: Path) -> None:
    errors = [error.message for error in validator(name).iter_errors(load(path))]
    assert errors == []


@pytest.mark.parametrize(("name", "path"), examples("invalid"))
def test_invalid_example_fails(name: str, path: Path) -> None:
    assert first_error(name, load(path)) is not None


# --- the code holds to the schemas


@pytest.mark.parametrize("path", sorted(PRESET_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_preset_validates_against_funnel_definition(path: Path) -> None:
    error = first_error("funnel-definition", load(path))
    assert error is None, error.message


def test_every_preset_file_is_a_listed_preset() -> None:
    assert sorted(path.stem for path in PRESET_DIR.glob("*.json")) == sorted(PRESETS)


@pytest.mark.parametrize(
    ("name", "pointer", "cls"),
    [
        ("transition", "", StageTransitioned),
        ("transition", "properties/trigger", Trigger),
        ("transition", "$defs/touch", TouchSummary),
        ("dropoff", "", DroppedOff),
        ("dropoff", "properties/recent_touchpoints/items", RecentTouch),
    ],
)
def test_output_schema_fields_are_the_dataclass_fields(name: str, pointer: str, cls: type) -> None:
    schema = load(schema_path(name))
    node = schema
    for part in filter(None, pointer.split("/")):
        node = node[part]
    declared = {f.name for f in fields(cls)} if is_dataclass(cls) else set(cls.__annotations__)  # or a TypedDict
    assert set(node["properties"]) == declared
    assert set(node["required"]) == declared  # every field is always written, null or not


def test_deadletter_reasons_are_the_decoders_reasons() -> None:
    assert load(schema_path("deadletter"))["properties"]["reason"]["enum"] == list(REASONS)


def touch(n: int, contact: str, kind: str, day: float, channel: str | None = None) -> Any:
    seconds = round(day * 86400)
    stamp = f"2024-03-{1 + seconds // 86400:02d}T{seconds % 86400 // 3600:02d}:{seconds % 3600 // 60:02d}:00Z"
    return from_dict(touchpoint(kind, contact, at=stamp, event_id=f"e{n}", channel=channel))


def test_engine_outputs_validate_against_their_schemas() -> None:
    journey = [
        ("c1", "ad_click", 0, "paid_search"),  # enters b2b-sales, aida, customer-journey
        ("c1", "content_download", 1, "email"),
        ("c1", "purchase", 2, None),  # b2b: lead -> customer, skipping prospect
        ("c1", "purchase", 3, None),  # nth=2: loyal_customer / advocacy
        ("c2", "quote_requested", 0.5, "referral"),  # quote-to-deal request; stalls after 7 days
        ("c2", "briefing_held", 9, None),  # reactivated into briefing
        ("c2", "quote_rejected", 10, None),  # lost in briefing
        ("c3", "page_view", 11, "organic"),
    ]
    touches = [touch(n, contact, kind, day, channel) for n, (contact, kind, day, channel) in enumerate(journey)]
    documents = replay(PRESETS, touches, until=touch(99, "c3", "page_view", 28).at, check=False).outputs
    for doc in documents:
        errors = [error.message for error in validator(doc["kind"]).iter_errors(doc)]
        assert errors == [], doc
    kinds = {(doc["kind"], doc.get("reason")) for doc in documents}
    assert kinds == {("transition", None), ("dropoff", "lost"), ("dropoff", "stalled")}
    assert any(doc.get("reactivated") for doc in documents)
    assert any(doc.get("skipped") for doc in documents)


@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize(
    ("payload", "source", "key"),
    [
        pytest.param(b'{"event_id": 1}', file_source("touchpoints.jsonl", 3), None, id="file-utf8"),
        pytest.param(b"\xff\xfe{", file_source("-", 1), None, id="stdin-binary"),
        pytest.param(b"[1, 2]", topic_source("touchpoints", 0, 0), b"contact-9", id="topic-utf8-key"),
        pytest.param(b"\x80", topic_source("touchpoints", 11, 123456789), b"\xc3\x28", id="topic-binary-key"),
        pytest.param(b"", topic_source("touchpoints", 2, 7), None, id="topic-empty-no-key"),
    ],
)
def test_dead_letters_validate(reason: str, payload: bytes, source: dict[str, Any], key: bytes | None) -> None:
    doc = orjson.loads(orjson.dumps(dead_letter(reason, "what is wrong", payload, source, key)))
    errors = [error.message for error in validator("deadletter").iter_errors(doc)]
    assert errors == []
