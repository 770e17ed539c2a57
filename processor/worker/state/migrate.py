"""The start-up check: the configured funnels against the definitions stored journeys were written under.

Every set of funnel definitions a worker starts with is recorded in a compacted topic of the
app, `{app_id}-funnel-definitions` (one record per layout: its 8-byte digest, as entry headers
carry it, and each funnel's stage names in slot order), before the worker writes a single entry
under it. A restarted worker, or one newly given partitions, reads that topic before Faust
starts, so it knows what every stored entry's stage indexes mean before it processes a record.

`prepare` (called once, by `funnel-processor worker`, before Faust starts):

1. reads the recorded layouts (the topic is created, compacted, if missing);
2. plans every change by stage name (`processor.funnel.migration.plan`);
3. where a recorded stage has nowhere to go (removed without a target, renamed without
   `renamed_from`), counts the contacts in it from the journeys changelog's entry headers
   (the latest entry of each contact; states are not decoded) and, if any contact is there,
   refuses: `MigrationRefused`, one message naming the funnel, the stage and the count, with
   nothing recorded and no journey touched;
4. records the configured layout if it is new, and returns the `Layout` the agent writes and
   reads entries with: entries of earlier layouts are migrated as they are read
   (`Layout.read`, `Layout.summary`), so a migration costs one decode per stored contact,
   once, and nothing per touchpoint; it emits no output.

Two workers must not run two definitions of one funnel side by side. A worker that meets an
entry under a layout recorded after it started stops (`entry.ForeignLayout`); the README's
"Changing a funnel" gives the rollout order that keeps it from happening.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from processor.config.settings import Settings
from processor.funnel.definition import Funnel
from processor.funnel.migration import Plan, Recorded, Shape, Stranded, plan
from processor.kafka import clients as kafkaio
from processor.worker.state.entry import EntryFormatError, Layout, entry_head

READ_IDLE_S = 0.5  # reading the definitions topic: done once nothing new arrived for this long
CHANGELOG_IDLE_S = 2.0  # counting stranded contacts: the same for the journeys changelog


class MigrationRefused(ValueError):
    """Stored journeys the configured definitions cannot place: the worker must not start."""


@dataclass(frozen=True)
class Prepared:
    layout: Layout
    notes: tuple[str, ...]  # what changed, one line each, for the start-up output


def record_document(layout: Layout, configured: int) -> bytes:
    """A layout as the definitions topic holds it."""
    doc = {
        "digest": layout.digest.hex(),
        "recorded_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "configured": configured,
        "funnels": [shape.document() for shape in layout.shapes],
    }
    return orjson.dumps(doc)


def recorded_layouts(values: Sequence[bytes]) -> list[Recorded]:
    """The layouts in the definitions topic's records, oldest first (a digest once)."""
    found: dict[bytes, Recorded] = {}
    for value in values:
        doc = orjson.loads(value)
        digest = bytes.fromhex(doc["digest"])
        found.setdefault(digest, Recorded(digest, tuple(Shape.from_document(f) for f in doc["funnels"])))
    return list(found.values())


def count_stranded(stranded: Sequence[Stranded], entries: Sequence[tuple[bytes, bytes | None]]) -> Counter[Stranded]:
    """Contacts at each stranded stage, from the latest entry of each contact (key, value in
    the changelog's order; None: a tombstone), reading entry headers only."""
    latest: dict[bytes, bytes | None] = {}
    for key, value in entries:
        latest[key] = value
    wanted: dict[bytes, list[tuple[int, int, Stranded]]] = {}
    for stage in stranded:
        for digest, slot, index in stage.places:
            wanted.setdefault(digest, []).append((slot, index, stage))
    counts: Counter[Stranded] = Counter()
    for value in latest.values():
        if not value:
            continue
        try:
            digest, slots = entry_head(value)
        except EntryFormatError:
            continue  # not an entry this build reads: the agent refuses it when it meets it
        for slot, index, stage in wanted.get(digest, ()):
            (code,) = struct.unpack_from(">H", slots, 2 * slot)
            if code and code // 2 - 1 == index:
                counts[stage] += 1
    return counts


def refusal(counts: Counter[Stranded]) -> str:
    """One message naming each stranded stage that holds contacts, and what to write."""
    parts = [
        f"funnel {stage.funnel!r}: stage {stage.stage!r} is no longer in its definition and {n:,} stored "
        f"contact{'s are' if n != 1 else ' is'} in it"
        for stage, n in counts.items()
    ]
    stage = next(iter(counts))
    return (
        "; ".join(parts)
        + f'. Name the stage they move to in the definition ("removed": {{"{stage.stage}": "<stage>"}}), or, '
        f'if it was renamed, give its former name in "renamed_from"; nothing was changed (README: Changing a funnel)'
    )


def prepare(settings: Settings, funnels: Sequence[Funnel]) -> Prepared:
    """Check the configured funnels against the recorded definitions; record them; the agent's Layout."""
    topic = kafkaio.definitions_topic(settings)
    kafkaio.create_compacted(settings, topic)
    try:
        records = kafkaio.read_topic(settings, topic, timeout_s=READ_IDLE_S)
    except kafkaio.TopicMissing:  # just created, not yet in the metadata: nothing recorded
        records = []
    recorded = recorded_layouts([r.value for r in records if r.value])
    decided: Plan = plan(funnels, recorded)
    if decided.stranded:
        counts = count_stranded(decided.stranded, _changelog(settings))
        held = Counter({stage: n for stage, n in counts.items() if n})
        if held:
            raise MigrationRefused(refusal(held))
    layout = Layout(funnels, decided)
    notes = list(decided.notes)
    if layout.digest not in decided.recorded:
        kafkaio.produce_records(
            settings, topic, [(layout.digest.hex().encode(), record_document(layout, len(funnels)))]
        )
        notes.append(f"funnel definitions recorded as layout {layout.digest.hex()} in {topic}")
    return Prepared(layout, tuple(notes))


def _changelog(settings: Settings) -> list[tuple[bytes, bytes | None]]:
    try:
        records = kafkaio.read_topic(settings, kafkaio.journeys_changelog(settings), timeout_s=CHANGELOG_IDLE_S)
    except kafkaio.TopicMissing:
        return []
    return [(r.key, r.value) for r in records if r.key is not None]
