"""Where the JSON Schemas live, validators built from them once, and the one loader of the
JSON files users write against them (funnel definitions, event mappings): `read_document`
reads and parses a file, and `unknown_field_problem` words the violation both meet most.

The schemas are the project's top-level `schemas/` folder, copied into the wheel as
`processor/config/_schemas` (see pyproject.toml), so installed and source trees both work.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

_HERE = Path(__file__).resolve().parent
SCHEMA_DIR = _HERE / "_schemas" if (_HERE / "_schemas").is_dir() else _HERE.parents[1] / "schemas"

# The version of each contract (SchemaVer) this build holds its input and outputs to. A
# published version file is never edited: a change adds a new file, and the entry here
# moves to it in the same change. It is always the newest version on disk (a test checks
# that), named here rather than found by listing files so that the move is a visible line.
CURRENT = {
    "touchpoint": "1-1-0",  # 1-1-0: channel and campaign have maximum lengths
    "transition": "1-0-0",
    "dropoff": "1-0-0",
    "deadletter": "1-0-1",  # 1-0-1: the reason future_timestamp
    "funnel-definition": "1-2-0",  # 1-1-0: breakdowns; 1-2-0: renamed_from and removed
    "event-mapping": "1-0-0",  # the input formats' event names and channel rules
    "segment-event": "1-0-0",  # FUNNEL_INPUT_FORMAT=segment
    "snowplow-event": "1-0-0",  # FUNNEL_INPUT_FORMAT=snowplow
}


def schema_path(name: str, version: str | None = None) -> Path:
    return SCHEMA_DIR / name / "jsonschema" / f"{version or CURRENT[name]}.json"


@cache
def validator(name: str, version: str | None = None) -> Draft202012Validator:
    """A validator for one schema; a broken schema fails here, at start-up."""
    schema = orjson.loads(schema_path(name, version).read_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def field_path(parts: Iterable[Any]) -> str:
    """["stages", 2, "nth"] -> "stages[2].nth"."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def first_error(name: str, document: Any) -> ValidationError | None:
    """The most relevant schema violation of a document, or None when it is valid."""
    error: ValidationError | None = best_match(validator(name).iter_errors(document))
    return error


def read_document(path: str | Path, error: Callable[[str, str, str], Exception]) -> Any:
    """The JSON document in a file. A file that cannot be read, or is not JSON, raises
    `error(file, "", problem)` (a DefinitionError, a MappingError: each names the file)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise error(source, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise error(source, "", f"not valid JSON: {exc}") from None


def unknown_field(name: str, allowed: dict[str, Any]) -> str:
    """What to say of an unknown field: the closest allowed one, else the list."""
    known = [field for field in allowed if field != "$schema"]
    close = difflib.get_close_matches(name, known, n=1)
    return (
        f"unknown field; did you mean {close[0]!r}?"
        if close
        else f"unknown field; the fields here are {', '.join(known)}"
    )


def unknown_field_problem(error: ValidationError) -> tuple[str, str] | None:
    """(field, problem) for an object with a field its schema does not allow, else None."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return None
    allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    unknown = next((name for name in error.instance if name not in allowed), None)
    if unknown is None:
        return None
    return field_path([*error.absolute_path, unknown]), unknown_field(unknown, allowed)
