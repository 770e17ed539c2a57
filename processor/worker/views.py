"""The worker's web port: health, interactive queries (and /metrics, in processor/worker/sensor.py).

- `GET /health`: 200 `{"status": "ready"}` once the worker has recovered its tables at
  start, 503 `{"status": "starting"}` before. No token: the Kubernetes probes use it.
- `GET /journeys/{contact_id}/`: the contact's position in every configured funnel,
  the id URL-encoded (`journey_path`). The worker that owns the contact's partition
  answers; another forwards the request there (`_forward`).
- `GET /funnels/`: per funnel and stage, the contacts currently in it (active, and
  dropped there), over the partitions this worker owns, which the answer lists.

The two query endpoints follow `QueryAccess` (processor/worker/webaccess.py): a token, or
loopback only, or an explicit opt-out; otherwise they answer 403 with the reason.
Nothing here logs a request: a path holds a contact id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import faust
from faust.exceptions import NotReady
from faust.tables.manager import TableManager
from faust.web import Request, Response, View
from yarl import URL

from processor.funnel.timefmt import format_time
from processor.worker.agent import JourneyAgent
from processor.worker.webaccess import QueryAccess

FORWARDED_HEADER = "Funnel-Forwarded"  # on a request one worker forwards to the contact's owner
FORWARD_TIMEOUT_S = 10.0
RETRY_AFTER_S = "1"
_PASSED_BACK = ("WWW-Authenticate", "Retry-After")  # headers of the owner's answer the client gets too


def journey_path(contact_id: str) -> str:
    """The path of a contact's journey: every character but letters, digits, '-', '_' and '~'
    percent-encoded as UTF-8, dots too (so that '.' and '..' stay ids, not path steps)."""
    return "/journeys/" + quote(contact_id, safe="").replace(".", "%2E") + "/"


def journey_document(agent: JourneyAgent, contact_id: str) -> dict[str, Any] | None:
    raw = agent.journeys.get(contact_id.encode())
    if raw is None:
        return None
    state = agent.tasks.layout.read(raw)[1]
    funnels: dict[str, Any] = {}
    for funnel in agent.funnels:
        pos = state.positions.get(funnel.name)
        funnels[funnel.name] = (
            None
            if pos is None
            else {
                "stage": funnel.stages[pos.stage],
                "entered_stage_at": format_time(pos.entered_at),
                "entered_funnel_at": format_time(pos.entry_at),
                "dropped": pos.dropped,
                "sequence": pos.sequence,
            }
        )
    return {
        "contact_id": contact_id,
        "last_touch_at": format_time(state.last_at),
        "first_touch": {"type": state.first.type, "occurred_at": state.first.when},
        "funnels": funnels,
    }


def _denied(view: View, access: QueryAccess, request: Request) -> Response | None:
    """The answer to a query this request may not make, or None."""
    if not access.served:
        return view.json({"error": access.notice}, status=403)
    reason = access.refusal(request.headers.get("Authorization"))
    if reason is None:
        return None
    challenge = 'Bearer realm="funnel-processor"' + ("" if reason.startswith("missing") else ', error="invalid_token"')
    return view.json({"error": reason}, status=401, headers={"WWW-Authenticate": challenge})


def _unavailable(view: View, why: str) -> Response:
    return view.json({"error": why}, status=503, headers={"Retry-After": RETRY_AFTER_S})


def _same_node(a: URL, b: URL) -> bool:
    return (a.host, a.port) == (b.host, b.port)


async def _forward(view: View, owner: URL, contact_id: str, request: Request) -> Response:
    """Ask the owning worker, passing on the client's Authorization header (all workers share the token).

    Faust's `table_route` forwards too, but it passes on every header of the request and
    lets the target forward again. Here the id is encoded afresh, only Authorization goes
    along, and the target never forwards a forwarded query: two workers that briefly
    disagree on who owns a partition (mid-rebalance) cannot bounce it between them.
    """
    headers = {FORWARDED_HEADER: "1"}
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        headers["Authorization"] = authorization
    url = owner.with_path(journey_path(contact_id), encoded=True)
    timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
    try:
        async with view.app.http_client.get(url, headers=headers, timeout=timeout) as answer:
            body = await answer.read()
            kept = {name: answer.headers[name] for name in _PASSED_BACK if name in answer.headers}
            return view.bytes(body, content_type=answer.content_type, status=answer.status, headers=kept)
    except (aiohttp.ClientError, TimeoutError):
        return view.json({"error": f"the worker that owns this contact ({owner.host}) did not answer"}, status=502)


def register_views(app: faust.App, agent: JourneyAgent, access: QueryAccess) -> None:
    tables = app.tables
    assert isinstance(tables, TableManager)
    recovered = tables.recovery.completed  # set once the tables are recovered at start (Faust's "Worker ready")

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            if recovered.is_set():
                return self.json({"status": "ready"})
            return self.json({"status": "starting"}, status=503)

    @app.page("/journeys/{contact_id}/")
    class Journey(View):
        async def get(self, request: Request, contact_id: str) -> Response:
            denied = _denied(self, access, request)
            if denied is not None:
                return denied
            try:  # the owner of the contact's partition, as the group's last assignment says
                owner = app.router.key_store(agent.journeys.name, contact_id.encode())
            except (KeyError, NotReady):
                owner = None
            if owner is None or app.rebalancing or app.in_recovery:
                return _unavailable(self, "the workers are rebalancing or recovering their tables")
            if not _same_node(owner, app.conf.canonical_url):
                if request.headers.get(FORWARDED_HEADER):
                    return _unavailable(self, "the contact's partition is moving between workers")
                return await _forward(self, owner, contact_id, request)
            document = journey_document(agent, contact_id)
            if document is None:
                return self.json({"error": f"no journey for contact {contact_id!r}"}, status=404)
            return self.json(document)

    @app.page("/funnels/")
    class Funnels(View):
        async def get(self, request: Request) -> Response:
            denied = _denied(self, access, request)
            if denied is not None:
                return denied
            return self.json({"partitions": agent.stage_counts.partitions(), "funnels": agent.stage_counts.table()})
