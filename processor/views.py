"""Interactive queries on the worker's web port.

- `GET /journeys/{contact_id}`: the contact's position in every configured funnel,
  answered by the worker that owns the contact's partition (Faust routes the request).
- `GET /funnels`: per funnel and stage, the contacts currently in it (active, and
  dropped there), over the partitions this worker owns, which the answer lists.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from processor.agents import JourneyAgent
from processor.funnel.timefmt import format_time
from processor.journeyentry import decode_entry


def journey_document(agent: JourneyAgent, contact_id: str) -> dict[str, Any] | None:
    raw = agent.journeys.get(contact_id.encode())
    if raw is None:
        return None
    state = decode_entry(raw)[1]
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


def register_views(app: faust.App, agent: JourneyAgent) -> None:
    @app.page("/journeys/{contact_id}/")
    class Journey(View):
        @app.table_route(table=agent.journeys, match_info="contact_id")
        async def get(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
            contact_id = request.match_info["contact_id"]
            document = journey_document(agent, contact_id)
            if document is None:
                return self.json({"error": f"no journey for contact {contact_id!r}"}, status=404)
            return self.json(document)

    @app.page("/funnels/")
    class Funnels(View):
        async def get(self, request: Request) -> Response:
            return self.json({"partitions": agent.stage_counts.partitions(), "funnels": agent.stage_counts.table()})
