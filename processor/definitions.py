"""Loading funnels: the built-in presets and users' definition files.

Each document is checked against schemas/funnel-definition, then compiled by the
core, which refuses funnels that cannot work. Every error names the file, the field
and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson

from processor.funnel.definition import DefinitionError, Funnel, compile_funnel
from processor.schemas import field_path, first_error

PRESET_DIR = Path(__file__).resolve().parent / "presets"
# The built-in funnels, in the order the SPEC lists them (and a worker runs them).
PRESETS = ("b2b-sales", "aida", "customer-journey", "quote-to-deal")


def preset_names() -> list[str]:
    return list(PRESETS)


def load_document(document: object, source: str) -> Funnel:
    error = first_error("funnel-definition", document)
    if error is not None:
        raise DefinitionError(source, field_path(error.absolute_path), error.message)
    assert isinstance(document, dict)
    return compile_funnel(document, source)


def load_file(path: str | Path) -> Funnel:
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DefinitionError(source, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DefinitionError(source, "", f"not valid JSON: {exc}") from None
    return load_document(document, source)


def load_preset(name: str) -> Funnel:
    if name not in preset_names():
        raise DefinitionError(f"preset {name!r}", "", f"no such preset; choose from {', '.join(preset_names())}")
    return load_file(PRESET_DIR / f"{name}.json")


def load_funnels(specs: Iterable[str]) -> list[Funnel]:
    """Preset names or definition file paths, in order; names must be unique."""
    funnels: list[Funnel] = []
    for spec in specs:
        is_path = spec.endswith(".json") or "/" in spec or Path(spec).is_file()
        funnel = load_file(spec) if is_path else load_preset(spec)
        if any(f.name == funnel.name for f in funnels):
            raise DefinitionError(spec, "name", f"funnel {funnel.name!r} is configured twice")
        funnels.append(funnel)
    return funnels
