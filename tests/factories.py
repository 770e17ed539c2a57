"""Builders shared by the unit and property tests: touchpoints, funnels and replays.

- `Touchpoints` makes touchpoint dicts (the JSON a producer sends) with sequential
  event ids and times, so a test names only what matters to it.
- `define` compiles a small custom funnel through the same loader users go through.
- `replay` runs `processor.funnel.engine.Engine` over touchpoint dicts and returns
  every output as a plain dict (an orjson round trip, as a consumer would read it),
  each one checked against its JSON Schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson

from processor.config.definitions import PRESETS, load_document, load_preset
from processor.config.schemas import schema_path, validator
from processor.funnel.definition import Funnel
from processor.funnel.engine import Engine
from processor.funnel.journey import ContactState, Limits
from processor.funnel.touchpoint import from_dict

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

Doc = dict[str, Any]


def rfc3339(moment: datetime) -> str:
    """A timestamp as a producer would send it, in UTC with a 'Z'."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // US


def instant(text: str) -> datetime:
    """An output's timestamp as an aware datetime (compare instants, not spellings)."""
    return datetime.fromisoformat(text)


class Touchpoints:
    """Touchpoint dicts with event ids e1, e2... and times one `gap` apart.

    `after` sets the time since the previous touchpoint made here, `at` an absolute
    time (earlier ones make out-of-order input). Optional fields are set only when given.
    """

    def __init__(self, start: datetime = T0, gap: timedelta = MINUTE) -> None:
        self.start, self.gap = start, gap
        self.count = 0
        self.now = start

    def __call__(
        self,
        type: str,
        contact: str = "c1",
        *,
        after: timedelta | None = None,
        at: datetime | None = None,
        event_id: str | None = None,
        **optional: Any,
    ) -> Doc:
        if at is None and self.count == 0:
            at = self.start + (after or timedelta(0))
        elif at is None:
            at = self.now + (self.gap if after is None else after)
        self.count += 1
        self.now = at
        doc: Doc = {
            "event_id": event_id or f"e{self.count}",
            "contact_id": contact,
            "type": type,
            "occurred_at": rfc3339(at),
        }
        doc.update({k: v for k, v in optional.items() if v is not None})
        return doc


def define(name: str, stages: Sequence[str], rules: Sequence[Doc], **rest: Any) -> Funnel:
    """A custom funnel, checked against schemas/funnel-definition and compiled."""
    document = {"name": name, "stages": list(stages), "rules": list(rules), **rest}
    return load_document(document, f"<test funnel {name}>")


@cache
def preset(name: str) -> Funnel:
    return load_preset(name)


def all_presets() -> list[Funnel]:
    return [preset(name) for name in PRESETS]


def check_output(doc: Mapping[str, Any]) -> None:
    """Fail unless the output is valid against its schema (skipped only while the file is missing)."""
    name = doc["kind"]
    assert name in ("transition", "dropoff"), f"unknown output kind {name!r}"
    if not schema_path(name).is_file():
        return
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(doc)]
    assert not errors, f"{name} output breaks its schema: {errors}\n{doc}"


@dataclass
class Replay:
    engine: Engine
    steps: list[list[Doc]]  # the outputs of each touchpoint, in input order
    tail: list[Doc]  # the outputs fired by `until`

    @property
    def outputs(self) -> list[Doc]:
        return [out for step in self.steps for out in step] + self.tail


def replay(
    funnels: Iterable[str | Funnel],
    touchpoints: Iterable[Mapping[str, Any]],
    *,
    until: datetime | None = None,
    limits: Limits | None = None,
    check: bool = True,
    store: MutableMapping[str, ContactState] | None = None,
) -> Replay:
    """Feed touchpoint dicts to a fresh Engine, then fire what is due at `until`. With `store`,
    the engine starts from those states (e.g. an earlier replay's, migrated), their timers rebuilt."""
    engine = Engine([preset(f) if isinstance(f, str) else f for f in funnels], store, limits=limits)
    if store is not None:
        engine.schedule(list(store))

    def plain(produced: Iterable[object]) -> list[Doc]:
        docs: list[Doc] = [orjson.loads(orjson.dumps(out)) for out in produced]
        if check:
            for doc in docs:
                check_output(doc)
        return docs

    steps = [plain(engine.observe(from_dict(dict(tp)))) for tp in touchpoints]
    tail = plain(engine.advance_to(micros(until))) if until is not None else []
    return Replay(engine, steps, tail)


def brief(doc: Mapping[str, Any]) -> tuple[Any, ...]:
    """A short, readable picture of an output for assertions."""
    if doc["kind"] == "transition":
        return ("transition", doc["funnel"], doc["contact_id"], doc["from_stage"], doc["to_stage"])
    return ("dropoff", doc["funnel"], doc["contact_id"], doc["stage"], doc["reason"])


def journeys(outputs: Iterable[Doc]) -> dict[tuple[str, str], list[Doc]]:
    """Outputs grouped by (contact_id, funnel), each group in emission order."""
    grouped: dict[tuple[str, str], list[Doc]] = {}
    for doc in outputs:
        grouped.setdefault((doc["contact_id"], doc["funnel"]), []).append(doc)
    return grouped


def by_contact(outputs: Iterable[Doc]) -> dict[str, list[Doc]]:
    grouped: dict[str, list[Doc]] = {}
    for doc in outputs:
        grouped.setdefault(doc["contact_id"], []).append(doc)
    return grouped
