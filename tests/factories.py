"""Builders shared by every tier of tests: touchpoints, funnels and replays.

- `touchpoint` makes one touchpoint dict (the JSON a producer sends), fields in the
  schema's order; `Touchpoints` makes a stream of them with sequential event ids and
  times, so a test names only what matters to it. `line` is one as record bytes.
- `define` compiles a small custom funnel through the same loader users go through.
- `replay` is the one helper that runs `processor.funnel.engine.Engine` over touchpoints
  (dicts, record bytes or decoded `Touchpoint`s): every output as a plain dict (an orjson
  round trip, as a consumer reads it), checked against its JSON Schema, step by step.
  With `flush="clock"` it is the file replay of `funnel-processor replay` (the oracle the
  worker is held to; tests/unit/test_factories.py proves the two agree); `replay_partitions` is
  that replay per input partition, outputs by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import orjson

from processor.config.definitions import PRESETS, load_document, load_file, load_preset
from processor.config.schemas import schema_path, validator
from processor.funnel.deadletter import dead_letter, file_source
from processor.funnel.definition import Funnel
from processor.funnel.engine import Engine
from processor.funnel.outputs import Output
from processor.funnel.state import ContactState, Limits
from processor.funnel.touchpoint import (
    DEFAULT_FUTURE_TOLERANCE_US,
    Invalid,
    Touchpoint,
    check_not_ahead,
    decode,
    from_dict,
)

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


def touchpoint(type: str, contact: str = "c1", *, at: datetime | str, event_id: str = "e1", **optional: Any) -> Doc:
    """One touchpoint dict: the required fields in the schema's order, then the optional ones given
    (None leaves one out). `at` is a datetime (written RFC 3339, UTC, 'Z') or the exact text to send."""
    doc: Doc = {
        "event_id": event_id,
        "contact_id": contact,
        "type": type,
        "occurred_at": at if isinstance(at, str) else rfc3339(at),
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    return doc


def line(doc: Mapping[str, Any]) -> bytes:
    """A touchpoint (or any document) as the record bytes a producer sends: compact JSON, no newline."""
    return orjson.dumps(doc)


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
        return touchpoint(type, contact, at=at, event_id=event_id or f"e{self.count}", **optional)


def funnel(spec: str | Path | Funnel) -> Funnel:
    """A preset by name, a definition file by path, or a compiled funnel as it is."""
    if isinstance(spec, Funnel):
        return spec
    return preset(spec) if isinstance(spec, str) and spec in PRESETS else load_file(str(spec))


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


Flush = Literal["clock"] | timedelta | None
Input = Mapping[str, Any] | bytes | Touchpoint


@dataclass
class Replay:
    """What `replay` saw: outputs as plain dicts (as a consumer reads them), in emission order."""

    engine: Engine
    steps: list[list[Doc]]  # the outputs of each input, in input order ([] for a dead-lettered one)
    tail: list[Doc]  # the outputs fired after the last input (`until` or `flush`)
    letters: list[Doc] = field(default_factory=list)  # dead letters, as `funnel-processor replay` writes them
    produced: list[Output] = field(default_factory=list)  # the outputs as the engine returned them, in order

    @property
    def outputs(self) -> list[Doc]:
        return [out for step in self.steps for out in step] + self.tail

    @property
    def lines(self) -> list[bytes]:
        """The outputs as the output lines `funnel-processor replay` writes (without newlines)."""
        return [orjson.dumps(out) for out in self.outputs]

    @property
    def by_id(self) -> dict[str, Doc]:
        """The outputs by id (ids are unique; were one repeated, the last would stand)."""
        return {out["id"]: out for out in self.outputs}


def replay(
    funnels: Iterable[str | Path | Funnel],
    touchpoints: Iterable[Input],
    *,
    until: datetime | int | None = None,
    limits: Limits | None = None,
    check: bool = True,
    flush: Flush = None,
    now: datetime | int | None = None,
    future_tolerance: int = DEFAULT_FUTURE_TOLERANCE_US,
    source: str = "replay",
    store: MutableMapping[str, ContactState] | None = None,
    attributed: bool = False,
    engine: Engine | None = None,
) -> Replay:
    """Replay touchpoints through one fresh Engine (one event-time clock, as one input partition
    or one `funnel-processor replay` run), then fire what is due after the last.

    Order: inputs are applied strictly in the order given, never sorted by event time (a late
    one is applied late, as the worker would). Each input's step holds, in emission order, what
    fell due on the clock before it, then what it caused itself; `tail` what fired at the end;
    `outputs` is the steps then the tail.

    `funnels`: preset names, definition file paths or compiled funnels. Each input is a
    touchpoint dict, a record's bytes (decoded as the replay command decodes a line; a blank
    one is passed over, with no step) or a decoded `Touchpoint`. A record that does not decode becomes a
    dead letter sourced as line n of `source` (as `funnel-processor replay` writes it) and
    changes nothing; a dict that does not decode raises `Invalid` (the test built it wrong).
    With `now` (a datetime or µs) every input counts as arriving then: one dated more than
    `future_tolerance` after it is dead-lettered as future_timestamp.

    After the last input: with `until` (a datetime or µs), what is due then fires; else `flush` says what
    fires: None nothing (the engine is left as the inputs left it), "clock" what is due at
    the event-time clock (as `funnel-processor replay` without --until does), a timedelta
    what is due that long after the clock (e.g. 400 days: every stall). Unlike the command,
    an `until` earlier than a touchpoint is not refused.

    `store` and `attributed` are the Engine's own (a journey store, whose states' timers are
    rebuilt first, e.g. an earlier replay's, migrated; attributions kept for
    `engine.take_attributions()`). `engine` continues an engine (e.g. one restored from its
    states) instead of making one; its funnels must be `funnels`. With `check`, every output
    is validated against its schema.
    """
    if until is not None and flush is not None:
        raise ValueError("give `until` or `flush`, not both")
    compiled = tuple(funnel(f) for f in funnels)
    if engine is None:
        engine = Engine(compiled, store, limits, attributed=attributed)
        if store is not None:
            engine.schedule(list(store))  # timers rebuilt for states stored before (e.g. migrated)
    elif engine.funnels != compiled or store is not None or limits is not None or attributed:
        raise ValueError("a continued engine keeps its own funnels, store, limits and attributions")
    arrived = micros(now) if isinstance(now, datetime) else now
    run = Replay(engine, [], [])

    def plain(produced: list[Output]) -> list[Doc]:
        run.produced += produced
        docs: list[Doc] = [orjson.loads(orjson.dumps(out)) for out in produced]
        if check:
            for doc in docs:
                check_output(doc)
        return docs

    for number, item in enumerate(touchpoints, 1):
        if isinstance(item, bytes):
            item = item.rstrip(b"\n")
            if not item.strip():
                continue
        # A dict or Touchpoint the test built wrong raises Invalid here, as before; only records
        # (bytes) that do not decode, and refused future ones, become dead letters.
        tp = None if isinstance(item, bytes) else item if isinstance(item, Touchpoint) else from_dict(dict(item))
        try:
            tp = decode(item) if isinstance(item, bytes) else tp
            assert tp is not None
            if arrived is not None:
                check_not_ahead(tp, arrived, future_tolerance)
        except Invalid as bad:
            record = item if isinstance(item, bytes) else line(item._asdict() if isinstance(item, Touchpoint) else item)
            letter = dead_letter(bad.reason, bad.detail, record, file_source(source, number))
            run.letters.append(orjson.loads(orjson.dumps(letter)))
            run.steps.append([])
            continue
        run.steps.append(plain(engine.observe(tp)))
    if until is not None:
        run.tail = plain(engine.advance_to(micros(until) if isinstance(until, datetime) else until))
    elif flush is not None and engine.clock is not None:
        final = engine.clock if flush == "clock" else engine.clock + flush // US
        run.tail = plain(engine.advance_to(final))
    return run


def replay_partitions(
    funnels: Iterable[str | Path | Funnel], parts: Iterable[Sequence[Input]], **options: Any
) -> dict[str, Doc]:
    """The worker's expected outputs by id: each part (one input partition's records, in the order
    the partition holds them) replayed with its own clock as `funnel-processor replay` does
    (`flush="clock"` unless `until` is given). Every record must be a touchpoint: a dead letter fails."""
    specs = list(funnels)
    if options.get("until") is None:
        options.setdefault("flush", "clock")
    outputs: dict[str, Doc] = {}
    for part in parts:
        run = replay(specs, part, **options)
        assert run.letters == [], run.letters[:3]
        outputs.update(run.by_id)
    return outputs


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
