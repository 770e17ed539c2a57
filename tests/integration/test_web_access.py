"""Who can read a journey, on running workers (SPEC: Web access).

With FUNNEL_WEB_TOKEN set, the query endpoints answer only `Authorization: Bearer`
with that token; /metrics and /health answer anyone; none of Faust's own pages exist.
Contact ids holding '/', '%', spaces, non-ASCII characters or dots are queried
URL-encoded, and a query sent to the worker that does not own the contact is
forwarded to the one that does, token and all. Every worker binds 127.0.0.1; what a
non-loopback bind does is shown without binding one (tests/unit/test_web.py, and the
start-up message below on an address no interface has).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import line, touchpoint
from webclient import TOKEN, get, path_of, poll

from processor.kafka import clients as kafkaio
from processor.worker.agent import default_partition

# One of each kind of character a path must carry encoded; '..' would be a path step if sent as dots.
TRICKY_IDS = ["acme/eu/42", "50%off", "x%2Fy", "jane doe", "Zoë Ünïcødé 東京", "..", ".", "a+b?c#d&e=f;g"]
PLAIN_IDS = [f"plain-{n}" for n in range(12)]
BUILTIN = ["/", "/table/", "/table/journeys/", "/router/", "/router/journeys/acme/", "/assignment/", "/graph/"]
BUILTIN += ["/performance/"]
ANSWER_TIMEOUT_S = 60.0  # a touchpoint through the worker until its journey is answered
SETTLE_TIMEOUT_S = 90.0  # two workers of one group share the partitions
STARTUP_EXIT_S = 30.0


def touchpoints(contact_ids: list[str]) -> list[bytes]:
    """One quote request per contact, a few hours ago (past any bound on future event times)."""
    when = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [line(touchpoint("quote_requested", cid, at=when, event_id=f"e{n}")) for n, cid in enumerate(contact_ids)]


def worker_env(broker: Any, names: Any, port: int, **extra: str) -> dict[str, str]:
    env: dict[str, str] = broker.env(
        names,
        idle_after="1d",
        store="memory",
        web_port=port,
        funnels="quote-to-deal",
        web_token=TOKEN,
        **extra,
    )
    return env


def test_only_the_token_opens_the_queries_and_faust_pages_are_gone(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int]
) -> None:
    names = topics(2)
    port = free_port()
    env = worker_env(broker, names, port)
    kafkaio.produce_lines(broker.settings(names), names.touchpoints, touchpoints(TRICKY_IDS))
    proc = worker(env)
    proc.wait_ready()

    assert get(port, "/health")[::2] == (200, {"status": "ready"})
    status, headers, metrics = get(port, "/metrics")
    assert status == 200 and "funnel_touchpoints_total" in metrics
    for path in BUILTIN:
        assert get(port, path)[0] == 404, path
        assert get(port, path, TOKEN)[0] == 404, f"{path} with the token"

    for path in ("/funnels/", path_of("acme/eu/42"), path_of("nobody")):
        status, headers, body = get(port, path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer "), (path, status, body)
        assert get(port, path, "a-wrong-token-" * 4)[0] == 401, path
        assert get(port, path, Authorization=f"Basic {TOKEN}")[0] == 401, path

    def all_counted(status: int, body: Any) -> bool:
        return status == 200 and body["funnels"]["quote-to-deal"]["request"]["active"] == len(TRICKY_IDS)

    poll(port, "/funnels/", TOKEN, all_counted, ANSWER_TIMEOUT_S)
    for contact_id in TRICKY_IDS:
        journey = poll(port, path_of(contact_id), TOKEN, lambda status, _: status == 200, ANSWER_TIMEOUT_S)
        assert journey["contact_id"] == contact_id
        assert journey["funnels"]["quote-to-deal"]["stage"] == "request"
    for unknown in ("nobody", "acme/eu", "50%of", "Zoë", "..."):
        status, _, body = get(port, path_of(unknown), TOKEN)
        assert status == 404 and body["error"] == f"no journey for contact {unknown!r}"
    assert proc.stop() == 0


def settled(ports: list[int], partitions: int) -> list[set[int]]:
    """The partitions each worker owns, once the group has split them between all of its members."""
    deadline, owned = time.monotonic() + SETTLE_TIMEOUT_S, []
    while time.monotonic() < deadline:
        answers = [get(port, "/funnels/", TOKEN) for port in ports]
        if all(status == 200 for status, _, _ in answers):
            owned = [set(body["partitions"]) for _, _, body in answers]
            if all(owned) and sorted(p for parts in owned for p in parts) == list(range(partitions)):
                return owned
        time.sleep(0.5)
    pytest.fail(f"the workers did not split {partitions} partitions within {SETTLE_TIMEOUT_S} s: {owned}")


def test_a_query_to_the_other_worker_is_forwarded_with_the_token(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int]
) -> None:
    partitions = 4
    names = topics(partitions)
    ports = [free_port(), free_port()]
    procs = [worker(worker_env(broker, names, port), name=f"w{i}") for i, port in enumerate(ports)]
    for proc in procs:
        proc.wait_ready()
    owned = settled(ports, partitions)
    contacts = TRICKY_IDS + PLAIN_IDS
    kafkaio.produce_lines(broker.settings(names), names.touchpoints, touchpoints(contacts))

    forwarded = 0
    for contact_id in contacts:
        partition = default_partition(contact_id.encode(), partitions)
        [owner] = [port for port, parts in zip(ports, owned, strict=True) if partition in parts]
        [other] = [port for port in ports if port != owner]
        path = path_of(contact_id)
        local = poll(owner, path, TOKEN, lambda status, _: status == 200, ANSWER_TIMEOUT_S)
        assert local["contact_id"] == contact_id
        # The other worker forwards, with the client's token: the owner refuses a query without one.
        assert poll(other, path, TOKEN, lambda status, _: status == 200, ANSWER_TIMEOUT_S) == local
        forwarded += 1
        assert get(other, path)[0] == 401, "refused where it arrived, not forwarded"
        assert get(other, path, "a-wrong-token-" * 4)[0] == 401
        # A query that was already forwarded once is never forwarded again.
        status, headers, _ = get(other, path, TOKEN, **{"Funnel-Forwarded": "1"})
        assert status == 503 and headers["Retry-After"] == "1"
    assert forwarded == len(contacts) and len({p for parts in owned for p in parts}) == partitions
    assert [set(get(port, "/funnels/", TOKEN)[2]["partitions"]) for port in ports] == owned, "a rebalance"
    for proc in procs:
        assert proc.stop() == 0


def test_a_non_loopback_bind_without_a_token_says_so_once_at_start(broker: Any, free_port: Callable[[], int]) -> None:
    """192.0.2.1 (TEST-NET-1) is on no interface: nothing can bind it. The broker is unreachable,
    so the worker stops after its start-up checks, having said what it does with the queries."""
    env = broker.env(broker_url=f"kafka://127.0.0.1:{free_port()}", web_bind="192.0.2.1")
    done = subprocess.run(
        [sys.executable, "-m", "processor", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=STARTUP_EXIT_S,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    notices = [line for line in done.stderr.splitlines() if "query endpoints" in line]
    assert len(notices) == 1, done.stderr[-3000:]
    [notice] = notices
    assert notice.startswith("funnel-processor worker: the query endpoints (/journeys/, /funnels/) are off")
    for needle in ("192.0.2.1", "FUNNEL_WEB_TOKEN", "FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES", "/metrics and /health"):
        assert needle in notice, needle
    assert "Traceback" not in done.stderr
