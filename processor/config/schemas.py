"""Where the JSON Schemas live, and validators built from them once.

The schemas are the project's top-level `schemas/` folder, copied into the wheel as
`processor/config/_schemas` (see pyproject.toml), so installed and source trees both work.
"""

from __future__ import annotations

from collections.abc import Iterable
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
