"""The worker dead-letters every malformed record, once, and keeps going (SPEC: Touchpoint, Dead letter).

A corpus of bad records goes in among simulated good ones. Each bad record must come out
on the dead-letter topic with its reason, its source (topic, partition and offset as Kafka
stored it), its payload and its key; the good records must give exactly the outputs of the
file replay of the good records alone, per partition (`expected.oracle_of_stored`); and the
worker must neither crash nor restart.
"""

from __future__ import annotations

import base64
import time
from collections import defaultdict
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any, cast

import orjson
from badrecords import Bad, produce_each, sized
from expected import assert_same_outputs, oracle_of_stored, simulate
from factories import touchpoint
from kafkaread import letters_of, outputs_of
from workers import assert_never_restarted, start_ready_worker

from processor.config.schemas import validator
from processor.funnel.timefmt import parse_time
from processor.kafka import clients as kafkaio
from processor.kafka.clients import ConsumedRecord
from processor.worker.agent import default_partition

PARTITIONS = 4
GOOD_TOUCHPOINTS = 300
LIMIT = 64 * 1024  # the SPEC's record size limit, in bytes
WHEN = "2026-01-02T00:00:00Z"  # event time of the records made here unless a test says otherwise


def doc(name: str, **changes: Any) -> dict[str, Any]:
    """A valid touchpoint for contact `name` (unique event id), with fields changed; None removes one."""
    merged = {**touchpoint("page_view", name, at=WHEN, event_id=f"ev-{name}"), **changes}
    return {field: value for field, value in merged.items() if value is not None}


def bad_doc(name: str, reason: str, key: bytes | None = None, **changes: Any) -> Bad:
    return Bad(name, reason, orjson.dumps(doc(name, **changes)), name.encode() if key is None else key)


def corpus() -> list[Bad]:
    wrong = (default_partition(b"wrong-partition", PARTITIONS) + 1) % PARTITIONS
    return [
        Bad("not-json", "invalid_json", b"{this is not json, bad-1", b"bad-1"),
        Bad("truncated", "invalid_json", b'{"event_id": "ev-truncated", "contact_id": "tr', b"truncated"),
        Bad("empty-value", "invalid_json", b"", b"empty-value"),
        Bad("binary", "invalid_json", b"\xff\xfe\x00binary\x80", b"binary"),
        Bad("binary-in-json", "invalid_json", b'{"event_id": "\xc3\x28", "contact_id": "binary-in-json"}', None),
        Bad("array", "not_an_object", b'["ev-array", "array"]', b"array"),
        Bad("string", "not_an_object", b'"a string, not an object"', b"string"),
        Bad("number", "not_an_object", b"424242", b"number"),
        Bad("json-null", "not_an_object", b"null", b"json-null"),
        *(bad_doc(f"no-{field}", "missing_field", **{field: None}) for field in ("event_id", "type", "occurred_at")),
        bad_doc("no-contact", "missing_field", key=b"no-contact", contact_id=None),
        bad_doc("int-event-id", "wrong_type", event_id=42),
        bad_doc("int-contact-id", "wrong_type", key=b"7", contact_id=7),
        bad_doc("list-type", "wrong_type", type=["page_view"]),
        bad_doc("epoch-occurred-at", "wrong_type", occurred_at=1767312000),
        bad_doc("int-channel", "wrong_type", channel=7),
        bad_doc("object-campaign", "wrong_type", campaign={"name": "spring"}),
        bad_doc("string-properties", "wrong_type", properties="plan=pro"),
        bad_doc("empty-event-id", "invalid_value", event_id=""),
        bad_doc("empty-contact-id", "invalid_value", key=b"", contact_id=""),
        bad_doc("empty-type", "invalid_value", type=""),
        bad_doc("long-event-id", "invalid_value", event_id="e" * 129),
        bad_doc("c" * 129, "invalid_value"),
        bad_doc("long-type", "invalid_value", type="t" * 65),
        bad_doc("long-channel", "invalid_value", channel="c" * 65),
        bad_doc("long-campaign", "invalid_value", campaign="k" * 30_000),
        bad_doc("from-2099", "future_timestamp", occurred_at="2099-01-01T00:00:00Z"),
        bad_doc("ts-no-offset", "bad_timestamp", occurred_at="2026-01-02T00:00:00"),
        bad_doc("ts-date-only", "bad_timestamp", occurred_at="2026-01-02"),
        bad_doc("ts-month-13", "bad_timestamp", occurred_at="2026-13-02T00:00:00Z"),
        bad_doc("ts-words", "bad_timestamp", occurred_at="yesterday"),
        Bad("oversized", "too_large", sized(doc("oversized"), LIMIT + 1), b"oversized"),
        bad_doc("keyed-by-another", "key_mismatch", key=b"someone-else"),
        bad_doc("keyed-by-binary", "key_mismatch", key=b"\xff\x00\xfe"),
        Bad("no-key", "key_mismatch", orjson.dumps(doc("no-key")), None),
        Bad("wrong-partition", "key_mismatch", orjson.dumps(doc("wrong-partition")), b"wrong-partition", wrong),
    ]


def edge_goods(when: str) -> list[bytes]:
    """Good records at the edges of validity: exactly 64 KiB, optional fields null.

    They go last, so they take the stream's latest time: event times never going backwards,
    the worker owes exactly the replay's outputs (SPEC, Determinism).
    """
    return [
        sized(doc("edge-64k", occurred_at=when), LIMIT),
        orjson.dumps({**doc("edge-nulls", occurred_at=when), "channel": None, "campaign": None, "properties": None}),
    ]


def key_of(line: bytes) -> bytes:
    return str(orjson.loads(line)["contact_id"]).encode()


def interleave(goods: list[bytes], bads: list[Bad]) -> list[tuple[bytes | None, bytes]]:
    """Good records keyed by contact, with a bad one after every few of them (none a tombstone: `produce_each`
    sends those)."""
    records: list[tuple[bytes | None, bytes]] = []
    step = max(1, len(goods) // (len(bads) + 1))
    pending = iter(bads)
    for index, line in enumerate(goods):
        records.append((key_of(line), line))
        if index % step == step - 1 and (bad := next(pending, None)) is not None:
            records.append((bad.key, cast(bytes, bad.value)))
    records += [(bad.key, cast(bytes, bad.value)) for bad in pending]
    return records


def locate(stored: list[ConsumedRecord], bads: list[Bad]) -> dict[tuple[int, int], Bad]:
    """Where Kafka stored each bad record: (partition, offset) -> the record."""
    by_value = {bad.value: bad for bad in bads}
    found = {(r.partition, r.offset): by_value[r.value] for r in stored if r.value in by_value}
    assert sorted(b.name for b in found.values()) == sorted(b.name for b in bads), "a bad record is not stored once"
    for (partition, _), bad in found.items():
        assert bad.partition in (None, partition), f"{bad.name} went to partition {partition}"
    return found


def as_text(raw: bytes | None) -> tuple[str, str]:
    raw = raw or b""  # a record with no value has an empty payload
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def check_letters(records: list[ConsumedRecord], located: dict[tuple[int, int], Bad], topic: str) -> list[str]:
    """Problems with the dead letters: each bad record once (or exact copies), right reason, source, payload, key."""
    problems: list[str] = []
    by_source: dict[tuple[int, int], list[ConsumedRecord]] = defaultdict(list)
    for record in records:
        letter = orjson.loads(record.value or b"null")
        validator("deadletter").validate(letter)
        source = letter["source"]
        if source["topic"] != topic:
            problems.append(f"dead letter names topic {source['topic']!r}: {letter}")
        by_source[source["partition"], source["offset"]].append(record)
    for where in by_source.keys() - located.keys():
        problems.append(f"dead letter for a record that is not bad, at {where}: {by_source[where][0].value!r:.300}")
    for where, bad in located.items():
        copies = by_source.get(where, [])
        if not copies:
            problems.append(f"{bad.name} ({bad.reason}) at partition/offset {where}: no dead letter")
            continue
        if len({(c.key, c.value) for c in copies}) > 1:
            problems.append(f"{bad.name}: {len(copies)} dead letters that differ")
        letter = orjson.loads(copies[0].value or b"null")
        payload, encoding = as_text(bad.value)
        expected = {"reason": bad.reason, "payload": payload, "payload_encoding": encoding}
        if bad.key is not None:
            expected["key"], expected["key_encoding"] = as_text(bad.key)
        got = {field: letter.get(field) for field in expected} | {"has key": "key" in letter}
        if got != expected | {"has key": bad.key is not None}:
            problems.append(f"{bad.name}: expected {expected}, got {letter}"[:600])
        if copies[0].key != bad.key:
            problems.append(f"{bad.name}: dead letter keyed {copies[0].key!r}, the record was keyed {bad.key!r}")
    return problems


def test_every_bad_record_is_dead_lettered_once_and_every_good_one_processed(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int], tmp_path: Path
) -> None:
    names = topics(PARTITIONS)
    settings = broker.settings(names)
    goods = simulate(tmp_path / "good.jsonl", GOOD_TOUCHPOINTS, seed=11, days=2)
    goods += edge_goods(max((orjson.loads(line)["occurred_at"] for line in goods), key=parse_time))
    bads = corpus()
    records = interleave(goods, [bad for bad in bads if bad.partition is None])
    assert kafkaio.produce_records(settings, names.touchpoints, records) == len(records)
    produce_each(settings, names.touchpoints, [bad for bad in bads if bad.partition is not None])
    stored = kafkaio.read_topic(settings, names.touchpoints, timeout_s=2.0, expect=len(goods) + len(bads))
    located = locate(stored, bads)
    expected = oracle_of_stored(stored, located)

    proc = start_ready_worker(broker, names, worker, free_port)
    letters = letters_of(settings, len(located))
    problems = check_letters(letters, located, names.touchpoints)
    assert not problems, f"{len(problems)} dead-letter problems:\n" + "\n".join(problems)
    got = outputs_of(settings, len(expected))
    repeats = assert_same_outputs(got, expected)
    print(f"{len(located)} bad records dead-lettered, {len(expected)} good outputs; {repeats} repeats")
    assert_never_restarted(proc)


def test_a_known_contact_produced_to_another_partition_is_dead_lettered(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int]
) -> None:
    """The partition check must not stop at new contacts: a known contact's touchpoint in another
    partition would be applied under the wrong partition's clock and written to the wrong changelog
    partition. A neighbour (a contact that belongs there) sends before and after it."""
    names = topics(PARTITIONS)
    settings = broker.settings(names)
    wrong = (default_partition(b"known", PARTITIONS) + 1) % PARTITIONS
    neighbour = next(n for i in count() if default_partition((n := f"neighbour-{i}").encode(), PARTITIONS) == wrong)
    first = orjson.dumps(doc("known", occurred_at="2026-01-02T00:00:00Z"))
    kafkaio.produce_records(settings, names.touchpoints, [(b"known", first)])
    proc = start_ready_worker(broker, names, worker, free_port)
    entries = outputs_of(settings, 3)  # page_view enters b2b-sales, aida and customer-journey
    assert {o["contact_id"] for o in entries} == {"known"} and len(entries) >= 3, entries
    time.sleep(0.5)  # its state is written right after Kafka acknowledged the outputs

    def neighbours(name: str, **changes: Any) -> Bad:
        value = orjson.dumps(doc(neighbour, event_id=f"ev-{name}", **changes))
        return Bad(name, "", value, neighbour.encode())

    moved = doc("known", event_id="ev-known-2", type="purchase", occurred_at="2026-01-02T01:00:00Z")
    elsewhere = Bad("known-elsewhere", "key_mismatch", orjson.dumps(moved), b"known", wrong)
    before = neighbours("before", occurred_at="2026-01-02T00:30:00Z")
    after = neighbours("after", type="form_submitted", occurred_at="2026-01-02T02:00:00Z")
    produce_each(settings, names.touchpoints, [before, elsewhere, after])
    stored = kafkaio.read_topic(settings, names.touchpoints, timeout_s=2.0, expect=4)
    located = locate(stored, [elsewhere])
    expected = oracle_of_stored(stored, located)

    got = outputs_of(settings, len(expected))  # the neighbour's last outputs come after the bad record
    problems = check_letters(letters_of(settings, 1, timeout_s=5.0), located, names.touchpoints)
    problems += [f"output not in the replay: {o}"[:400] for o in got if expected.get(o["id"]) != o]
    assert not problems, "\n".join(problems)
    assert_same_outputs(got, expected)
    assert_never_restarted(proc)


def test_a_record_without_a_value_is_dead_lettered(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int]
) -> None:
    """A null value (a tombstone, as a compacting producer writes) is not JSON: dead-lettered, not a crash."""
    names = topics(PARTITIONS)
    settings = broker.settings(names)
    tombstone = Bad("tombstone", "invalid_json", None, b"tomb")
    good = Bad("good", "", orjson.dumps(doc("tomb")), b"tomb")  # same key, same partition, after it
    produce_each(settings, names.touchpoints, [tombstone, good])
    stored = kafkaio.read_topic(settings, names.touchpoints, timeout_s=2.0, expect=2)
    located = locate(stored, [tombstone])
    expected = oracle_of_stored(stored, located)

    proc = start_ready_worker(broker, names, worker, free_port)
    got = outputs_of(settings, len(expected))
    problems = check_letters(letters_of(settings, 1, timeout_s=5.0), located, names.touchpoints)
    assert not problems, "\n".join(problems)
    assert_same_outputs(got, expected)
    assert_never_restarted(proc)
