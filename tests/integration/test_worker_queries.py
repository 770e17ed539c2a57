"""Interactive queries on the worker's web port: a contact's journey and the live stage counts."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
from factories import touchpoint
from prometheus_client.parser import text_string_to_metric_families
from webclient import get_json

from processor.config.settings import Settings
from processor.kafka import clients as kafkaio

QUERY_TIMEOUT_S = 60.0


def test_journey_and_funnel_counts_are_served(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int]
) -> None:
    names = topics(2)
    port = free_port()
    env = broker.env(names, idle_after="1d", store="memory", web_port=port, funnels="quote-to-deal")
    settings = Settings.from_env(env)
    touchpoints = [
        touchpoint("quote_requested", "acme", at="2026-03-01T10:00:00Z", event_id="e1"),
        touchpoint("briefing_held", "acme", at="2026-03-02T10:00:00Z", event_id="e2"),
        touchpoint("quote_requested", "globex", at="2026-03-02T11:00:00Z", event_id="e3"),
        touchpoint("quote_requested", "initech", at="2026-03-02T12:00:00Z", event_id="e4"),
        touchpoint("quote_rejected", "initech", at="2026-03-02T13:00:00Z", event_id="e5"),
    ]
    kafkaio.produce_lines(settings, names.touchpoints, [orjson.dumps(t) for t in touchpoints])
    proc = worker(env)
    proc.wait_ready()
    base = f"http://127.0.0.1:{port}"

    deadline, counts = time.monotonic() + QUERY_TIMEOUT_S, dict[str, Any]()
    while time.monotonic() < deadline:
        status, body = get_json(f"{base}/funnels/")
        counts = body["funnels"]["quote-to-deal"] if status == 200 else {}
        if counts and sum(c["active"] + c["dropped"] for c in counts.values()) == 3:
            break
        time.sleep(0.5)
    assert counts == {
        "request": {"active": 1, "dropped": 1},
        "briefing": {"active": 1, "dropped": 0},
        "proposal": {"active": 0, "dropped": 0},
        "won": {"active": 0, "dropped": 0},
    }
    assert sorted(body["partitions"]) == [0, 1]

    status, journey = get_json(f"{base}/journeys/acme/")
    assert status == 200
    assert journey["funnels"]["quote-to-deal"] == {
        "stage": "briefing",
        "entered_stage_at": "2026-03-02T10:00:00Z",
        "entered_funnel_at": "2026-03-01T10:00:00Z",
        "dropped": False,
        "sequence": 2,
    }
    assert journey["first_touch"] == {"type": "quote_requested", "occurred_at": "2026-03-01T10:00:00Z"}
    status, missing = get_json(f"{base}/journeys/nobody/")
    assert status == 404 and "nobody" in missing["error"]

    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}

    def sample(family: str, name: str, **labels: str) -> float:
        return next(s.value for s in families[family].samples if s.name == name and s.labels == labels)

    assert sample("funnel_touchpoints", "funnel_touchpoints_total") == 5
    assert sample("funnel_stage_entries", "funnel_stage_entries_total", funnel="quote-to-deal", stage="request") == 3
    lost = {"funnel": "quote-to-deal", "stage": "request", "reason": "lost"}
    assert sample("funnel_dropoffs", "funnel_dropoffs_total", **lost) == 1
    assert sample("funnel_contacts_in_stage", "funnel_contacts_in_stage", funnel="quote-to-deal", stage="briefing") == 1
    assert any(name.startswith("funnel_faust_") for name in families)  # Faust's own sensor, same registry
    assert proc.stop() == 0
