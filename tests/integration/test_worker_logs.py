"""The worker's log holds no contact id and no payload (README: Security, Logs).

Every contact id, key and payload sent here carries one random marker: good touchpoints
(in ids, channel, campaign and properties), bad records of every kind the worker
dead-letters, and queries (answered, unknown, refused). The worker runs at info level,
is stopped, started again on the same consumer group (its tables recovered from their
changelogs) and queried again; the marker must then appear nowhere in either log, while
the dead-letter topic keeps it: dead letters hold the payload, by design.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from badrecords import Bad, produce_each, sized
from webclient import TOKEN, get, path_of, poll

from processor.kafka import clients as kafkaio
from processor.worker.agent import default_partition

PARTITIONS = 2
CONTACTS = 20
LETTERS_TIMEOUT_S = 60.0


def traffic(marker: str) -> tuple[list[bytes], list[Bad]]:
    now = datetime.now(UTC)

    def at(hours: float) -> str:
        return (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")

    goods = []
    for n in range(CONTACTS):
        contact = f"person-{marker}-{n}"
        extra = {"channel": f"chan-{marker}", "campaign": f"camp-{marker}", "properties": {"email": f"{marker}@x.io"}}
        goods.append({"event_id": f"{marker}-{n}-a", "contact_id": contact, "type": "quote_requested", **extra})
        then = ("quote_rejected", "briefing_held", "page_view")[n % 3]  # lost, forward, no match
        goods.append({"event_id": f"{marker}-{n}-b", "contact_id": contact, "type": then, **extra})
    lines = [orjson.dumps({**doc, "occurred_at": at(4 - index / len(goods))}) for index, doc in enumerate(goods)]

    def bad(name: str, value: bytes | None, key: bytes | None = None, partition: int | None = None) -> Bad:
        return Bad(name, "", value, f"{name}-{marker}".encode() if key is None else key, partition)

    def doc(name: str, **changes: Any) -> bytes:
        base = {"event_id": f"ev-{name}-{marker}", "contact_id": f"{name}-{marker}", "type": "page_view"}
        return orjson.dumps({**base, "occurred_at": at(1), **changes})

    misplaced = f"misplaced-{marker}"
    wrong = (default_partition(misplaced.encode(), PARTITIONS) + 1) % PARTITIONS
    bads = [
        bad("not-json", f'{{"contact_id": "not-json-{marker}", oops'.encode()),
        bad("binary", b"\xff\xfe\x00" + marker.encode()),
        bad("array", orjson.dumps([f"array-{marker}"])),
        bad("no-event-id", orjson.dumps({"contact_id": f"no-event-id-{marker}", "type": "x", "occurred_at": at(1)})),
        bad("int-channel", doc("int-channel", channel=7)),
        bad("long-event-id", doc("long-event-id", event_id=f"{marker}-" * 8)),
        bad("bad-time", doc("bad-time", occurred_at=f"yesterday {marker}")),
        bad("too-large", sized(orjson.loads(doc("too-large")), 64 * 1024 + 1)),
        bad("keyed-otherwise", doc("keyed-otherwise"), key=f"someone-{marker}".encode()),
        bad("misplaced", doc("misplaced"), key=misplaced.encode(), partition=wrong),
        bad("tombstone", None),
    ]
    return lines, bads


def test_no_contact_id_or_payload_reaches_the_log(
    broker: Any,
    topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
) -> None:
    marker = uuid.uuid4().hex
    names = topics(PARTITIONS)
    settings = broker.settings(names)
    lines, bads = traffic(marker)
    kafkaio.produce_lines(settings, names.touchpoints, lines)
    produce_each(settings, names.touchpoints, bads)
    port = free_port()
    env = broker.env(
        names,
        idle_after="1d",
        store="memory",
        web_port=port,
        funnels="quote-to-deal,b2b-sales",
        web_token=TOKEN,
        log_level="info",
    )

    def queries() -> None:
        for n in range(CONTACTS):
            contact = f"person-{marker}-{n}"
            poll(port, path_of(contact), TOKEN, lambda status, _: status == 200, LETTERS_TIMEOUT_S)
            assert get(port, path_of(contact))[0] == 401
        assert get(port, path_of(f"ghost-{marker}"), TOKEN)[0] == 404
        assert get(port, path_of(f"ghost/{marker}"), "not-the-token-" * 4)[0] == 401

    first = worker(env, name="first")
    first.wait_ready()
    deadline = time.monotonic() + LETTERS_TIMEOUT_S
    letters: list[Any] = []
    while len({r.value for r in letters}) < len(bads) and time.monotonic() < deadline:
        letters = kafkaio.read_topic(settings, names.deadletter, timeout_s=1.0)
    assert len({r.value for r in letters}) == len(bads), "every bad record dead-lettered"
    assert all(marker in (r.value or b"").decode() for r in letters), "dead letters keep the payload and key"
    queries()
    assert first.stop() == 0

    second = worker(env, name="second")  # the tables are recovered from their changelogs
    second.wait_ready()
    queries()
    assert second.stop() == 0

    for proc in (first, second):
        log = proc.log_text()
        assert "Worker ready" in log and "[INFO]" in log, "an info-level log to search"
        leaked = [line for line in log.splitlines() if marker in line]
        assert not leaked, f"{len(leaked)} log lines hold a contact id or payload:\n" + "\n".join(leaked[:5])
