"""The worker's web port without a broker: which pages exist, and who may query.

The app is the one `funnel-processor worker` runs (processor.worker.bootstrap.build_app), never
started: its aiohttp application is served on a loopback test server, so the settings
may name any bind address (0.0.0.0 included) while nothing binds anywhere but
127.0.0.1. What needs a running worker (answers, forwarding) is in
tests/integration/test_web_access.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from processor.config.definitions import load_funnels
from processor.config.settings import Secret, Settings
from processor.worker.bootstrap import build_app
from processor.worker.webaccess import is_loopback, query_access

TOKEN = "0123456789abcdef0123456789abcdef-token"
OURS = {"/health", "/metrics", "/funnels/", "/journeys/{contact_id}/"}
# Faust's built-in pages (faust/web/apps), each of which must be gone.
BUILTIN = ["/", "/table/", "/table/journeys/", "/table/journeys/c1/", "/router/", "/router/journeys/c1/"]
BUILTIN += ["/router/topics", "/assignment/", "/graph/", "/performance/"]
QUERIES = ["/funnels/", "/journeys/c1/"]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # the app's loop
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def serve(settings: Settings, loop: asyncio.AbstractEventLoop, requests: list[tuple[str, dict[str, str]]]) -> Any:
    """(status, headers, text) per (path, headers), from the worker's pages served on loopback; and its routes."""
    app = build_app(settings, load_funnels(settings.funnels))

    async def run() -> tuple[set[str], list[tuple[int, dict[str, str], str]]]:
        web_app = await app.web.wsgi()  # the routes as the worker's web server would have them
        routes = {route.resource.canonical for route in web_app.router.routes() if route.resource is not None}
        answers = []
        async with TestClient(TestServer(web_app, host="127.0.0.1")) as client:
            for path, headers in requests:
                async with client.get(path, headers=headers) as response:
                    answers.append((response.status, dict(response.headers), await response.text()))
        return routes, answers

    return loop.run_until_complete(run())


def settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(store="memory", data_dir=tmp_path, funnels=("quote-to-deal",), **changes)


def test_only_the_products_pages_exist(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    requests: list[tuple[str, dict[str, str]]] = [(path, {}) for path in BUILTIN]
    requests += [(path, {"Authorization": f"Bearer {TOKEN}"}) for path in BUILTIN]
    routes, answers = serve(settings(tmp_path, web_token=Secret(TOKEN)), loop, requests)
    assert routes == OURS
    assert [status for status, _, _ in answers] == [404] * len(requests)


def test_health_and_metrics_need_no_token(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    _, answers = serve(settings(tmp_path, web_token=Secret(TOKEN)), loop, [("/health", {}), ("/metrics", {})])
    (health, _, body), (metrics, headers, text) = answers
    assert (health, body) == (503, '{"status":"starting"}')  # the tables are not recovered: never started here
    assert metrics == 200 and headers["Content-Type"].startswith("text/plain") and "funnel_touchpoints_total" in text


def test_with_a_token_the_queries_need_it(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    cases = [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-wrong-token-wrong-token"}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": TOKEN}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"Authorization": f"bearer  {TOKEN} "}, 200),  # the scheme is case-insensitive
    ]
    _, answers = serve(settings(tmp_path, web_token=Secret(TOKEN)), loop, [("/funnels/", h) for h, _ in cases])
    assert [status for status, _, _ in answers] == [expected for _, expected in cases]
    for status, headers, body in answers:
        if status == 401:
            assert headers["WWW-Authenticate"].startswith('Bearer realm="funnel-processor"')
            assert TOKEN not in body
    missing, wrong = answers[0][1]["WWW-Authenticate"], answers[1][1]["WWW-Authenticate"]
    assert "invalid_token" not in missing and 'error="invalid_token"' in wrong


def test_a_journey_query_is_refused_before_anything_is_looked_up(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    requests = [("/journeys/c1/", {}), ("/journeys/c1/", {"Authorization": f"Bearer {TOKEN}"})]
    _, answers = serve(settings(tmp_path, web_token=Secret(TOKEN)), loop, requests)
    (refused, _, _), (unknown_owner, headers, body) = answers
    assert refused == 401
    # With the token, a worker that has not joined its group does not know the contact's owner yet.
    assert (unknown_owner, headers["Retry-After"]) == (503, "1") and "rebalancing" in body


def test_a_non_loopback_bind_without_a_token_serves_no_queries(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    chosen = settings(tmp_path, web_bind="0.0.0.0")
    notice = query_access(chosen).notice
    assert notice is not None and "FUNNEL_WEB_TOKEN" in notice and "FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES" in notice
    requests: list[tuple[str, dict[str, str]]] = [(path, {}) for path in QUERIES]
    requests += [("/metrics", {}), ("/health", {})]
    _, answers = serve(chosen, loop, requests)
    for status, _, body in answers[: len(QUERIES)]:
        assert status == 403 and notice[:60] in body
    assert [status for status, _, _ in answers[len(QUERIES) :]] == [200, 503]


def test_the_operator_can_open_the_queries_explicitly(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    chosen = settings(tmp_path, web_bind="0.0.0.0", web_allow_unauthenticated_queries="true")
    notice = query_access(chosen).notice
    assert notice is not None and "without a token" in notice
    _, answers = serve(chosen, loop, [("/funnels/", {})])
    assert answers[0][0] == 200


def test_on_loopback_without_a_token_the_queries_are_open_and_nothing_is_said(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    chosen = settings(tmp_path)
    assert query_access(chosen).notice is None
    _, answers = serve(chosen, loop, [("/funnels/", {})])
    assert answers[0][0] == 200


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.7", False),
        ("192.0.2.1", False),
        ("worker-0.funnels", False),  # a name may resolve anywhere
    ],
)
def test_what_counts_as_loopback(bind: str, loopback: bool) -> None:
    assert is_loopback(bind) is loopback


def test_the_token_is_not_kept_in_clear_by_the_access_rules() -> None:
    access = query_access(Settings(web_bind="0.0.0.0", web_token=Secret(TOKEN)))
    assert access.served and access.notice is None
    assert TOKEN not in repr(access) and TOKEN.encode() not in (access.token_digest or b"")
    assert access.refusal(f"Bearer {TOKEN}") is None
    assert access.refusal(None) == "missing Authorization: Bearer token"
    assert access.refusal(f"Bearer {TOKEN.upper()}") == "invalid token"
