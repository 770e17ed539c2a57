"""Loading an event mapping file: the worker's FUNNEL_INPUT_MAPPING, replay's and simulate's --mapping.

The file is checked against schemas/event-mapping, then compiled into the core's
`EventMapping` (processor/funnel/eventmap.py). Every error names the file, the field
and what is wrong, as funnel definition errors do:

    mapping.json: events.Order Completed: 'Purchase' is not in normal form: write 'purchase'
    mapping.json: channel_rule: unknown field; did you mean 'channel_rules'?
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError

from processor.config.schemas import field_path, first_error, read_document, unknown_field_problem, validator
from processor.funnel.eventmap import DEFAULT_CHANNEL_RULES, DEFAULT_MAPPING, EventMapping, channel_rule, normal_form

SCHEMA = "event-mapping"


class MappingError(ValueError):
    """A mapping file that cannot work. `where` names the field."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source, self.where, self.problem = source, where, problem
        super().__init__(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


def load_mapping(path: str | Path | None) -> EventMapping:
    """The mapping in the file at `path`; the defaults for None."""
    if path is None:
        return DEFAULT_MAPPING
    return compile_mapping(read_document(path, MappingError), str(path))


def compile_mapping(document: Any, source: str) -> EventMapping:
    error = first_error(SCHEMA, document)
    if error is not None:
        raise MappingError(source, *_explain(error))
    assert isinstance(document, dict)
    listed = tuple(document.get("events", {}).items())
    first: dict[str, tuple[str, str]] = {}  # normal form -> (name, type) first listed with it
    for name, kind in listed:
        key = normal_form(name)
        if not key:
            raise MappingError(source, f"events.{name}", "the name has no letter or digit, so no event can carry it")
        other_name, other_kind = first.setdefault(key, (name, kind))
        if other_kind != kind:
            raise MappingError(
                source,
                f"events.{name}",
                f"maps to {kind!r}, but {other_name!r}, the same name in normal form ({key}), maps to {other_kind!r}",
            )
    rules = tuple(
        channel_rule(rule["channel"], _values(rule.get("medium")), _values(rule.get("source")))
        for rule in document.get("channel_rules", ())
    )
    if document.get("default_channel_rules", True):
        rules += DEFAULT_CHANNEL_RULES
    return EventMapping(listed, rules, document.get("unmatched_channel"))


def _values(given: str | list[str] | None) -> list[str] | None:
    return None if given is None else [given] if isinstance(given, str) else given


def _explain(error: ValidationError) -> tuple[str, str]:
    """(field, problem) for a schema violation, in the words of the other mapping errors."""
    where = field_path(error.absolute_path)
    schema = validator(SCHEMA).schema
    assert isinstance(schema, dict)
    defs = schema["$defs"]
    if error.validator == "pattern" and error.schema == defs["normal_name"]:
        suggestion = normal_form(str(error.instance))
        hint = f"write {suggestion!r}" if suggestion else "use lower-case letters and digits joined by '_'"
        return where, f"{error.instance!r} is not in normal form: {hint}"
    if error.validator == "maxLength" and isinstance(error.instance, str):
        return where, f"{error.instance!r} is {len(error.instance)} characters; at most {error.validator_value}"
    unknown = unknown_field_problem(error)
    if unknown is not None:
        return unknown
    if error.validator == "anyOf" and list(error.absolute_path)[:1] == ["channel_rules"]:
        return where, "a channel rule needs a medium, a source, or both"
    if error.validator == "minLength" and list(error.absolute_path)[:1] == ["events"]:
        return "events", "an event name is empty"
    return where, error.message


__all__ = ["MappingError", "compile_mapping", "load_mapping"]
