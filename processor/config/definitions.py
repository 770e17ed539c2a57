"""Loading funnels: the built-in presets and users' definition files.

Each document is checked against schemas/funnel-definition, then compiled by the
core, which refuses funnels that cannot work. Every error names the file, the field
and what is wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from jsonschema.exceptions import ValidationError

from processor.config.schemas import field_path, first_error, read_document, unknown_field_problem, validator
from processor.funnel.definition import Breakdown, DefinitionError, Funnel, compile_funnel

PRESET_DIR = Path(__file__).resolve().parent / "presets"
# The built-in funnels, in the order the SPEC lists them (and a worker runs them).
PRESETS = ("b2b-sales", "aida", "customer-journey", "quote-to-deal")
# What parse_duration reads, as a funnel file's stall_after gives it.
DURATION_FORMS = "a number and a unit, as in 30d, 12h, 90m, 45s or 2w (1.5h works too), or a JSON number of seconds"


def preset_names() -> list[str]:
    return list(PRESETS)


def load_document(document: object, source: str) -> Funnel:
    error = first_error("funnel-definition", document)
    if error is not None:
        where, problem = _explain(error)
        raise DefinitionError(source, where, problem)
    assert isinstance(document, dict)
    return compile_funnel(document, source)


def _explain(error: ValidationError) -> tuple[str, str]:
    """(field, problem) for a schema violation, in the words of the other definition errors.

    The schema's own messages are kept, except where they would show a regular
    expression or say no more than "not allowed": durations, names, unknown fields and
    the reserved breakdown values.
    """
    where = field_path(error.absolute_path)
    schema = validator("funnel-definition").schema
    assert isinstance(schema, dict)
    defs = schema["$defs"]
    duration = defs["duration"]
    if error.schema in (duration, *duration["oneOf"]) and error.validator in ("oneOf", "pattern", "type"):
        return where, f"{error.instance!r} is not a duration: write {DURATION_FORMS}"
    if error.validator == "pattern" and error.schema == defs["stage_name"]:
        return where, (
            f"{error.instance!r} is not a stage name: lower-case letters, digits and '_', starting with a letter, "
            "at most 64 characters"
        )
    if error.validator == "pattern" and list(error.absolute_path) == ["name"]:
        return where, (
            f"{error.instance!r} is not a funnel name: lower-case letters, digits and '-', starting with a letter, "
            "at most 64 characters"
        )
    if error.schema == defs["breakdown_value"]:
        return where, f"{error.instance!r} is a label of its own (any other value, a missing value): do not list it"
    return unknown_field_problem(error) or (where, error.message)


def load_file(path: str | Path) -> Funnel:
    return load_document(read_document(path, DefinitionError), str(path))


def load_preset(name: str) -> Funnel:
    if name not in preset_names():
        raise DefinitionError(f"preset {name!r}", "", f"no such preset; choose from {', '.join(preset_names())}")
    return load_file(PRESET_DIR / f"{name}.json")


def load_funnels(specs: Iterable[str], preset_breakdowns: Sequence[Breakdown] = ()) -> list[Funnel]:
    """Preset names or definition file paths, in order; names must be unique.

    A definition file names its own breakdowns; the presets get `preset_breakdowns` (the
    worker's FUNNEL_BREAKDOWNS).
    """
    funnels: list[Funnel] = []
    for spec in specs:
        is_path = spec.endswith(".json") or "/" in spec or Path(spec).is_file()
        funnel = load_file(spec) if is_path else load_preset(spec)
        if not is_path and preset_breakdowns:
            funnel = dataclasses.replace(funnel, breakdowns=tuple(preset_breakdowns))
        if any(f.name == funnel.name for f in funnels):
            raise DefinitionError(spec, "name", f"funnel {funnel.name!r} is configured twice")
        funnels.append(funnel)
    return funnels
