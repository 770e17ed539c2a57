"""Case 2, the plain Faust baseline: what a team would write in an afternoon.

    BENCH_BROKER_URL=kafka://... BENCH_SOURCE=... BENCH_SINK=... BENCH_APP_ID=... \
    BENCH_PARTITIONS=4 BENCH_STORE=rocksdb BENCH_DATA_DIR=... BENCH_SESSION_TIMEOUT=2 \
    BENCH_FETCH_WAIT_MS=50 \
    python -m bench.faust_baseline worker --without-web -l warn

A faust-streaming agent reads each touchpoint (JSON), updates the contact's entry in a
table (a touchpoint count and the last type and time) and sends one record per event.
It uses the same store and consumer settings as the worker, its fetch wait included; it
does not wait for Kafka's acknowledgement of what it sends (Faust's default).
"""

from __future__ import annotations

import os
from typing import Any

import faust

from processor.worker.app import set_fetch_wait

env = os.environ
session_timeout = float(env.get("BENCH_SESSION_TIMEOUT", "10"))
app = faust.App(
    env["BENCH_APP_ID"],
    broker=env["BENCH_BROKER_URL"],
    store="rocksdb://" if env.get("BENCH_STORE", "rocksdb") == "rocksdb" else "memory://",
    datadir=env["BENCH_DATA_DIR"],
    topic_partitions=int(env["BENCH_PARTITIONS"]),
    broker_session_timeout=session_timeout,
    broker_heartbeat_interval=max(0.5, session_timeout / 10),  # as the worker (processor/worker/app.py)
    consumer_auto_offset_reset="earliest",
    autodiscover=False,
)
if "BENCH_FETCH_WAIT_MS" in env:
    set_fetch_wait(app, int(env["BENCH_FETCH_WAIT_MS"]) / 1000)
touchpoints = app.topic(env["BENCH_SOURCE"], key_serializer="raw", value_serializer="json")
updates = app.topic(env["BENCH_SINK"], key_serializer="raw", value_serializer="json")
contacts = app.Table("contacts", default=dict)


@app.agent(touchpoints)
async def track(stream: Any) -> None:
    async for touchpoint in stream:
        contact = touchpoint["contact_id"]
        seen = contacts[contact]
        state = {
            "touchpoints": seen.get("touchpoints", 0) + 1,
            "last_type": touchpoint["type"],
            "last_at": touchpoint["occurred_at"],
        }
        contacts[contact] = state
        update = {"contact_id": contact, "event_id": touchpoint["event_id"], **state}
        await updates.send(key=contact.encode(), value=update)


if __name__ == "__main__":
    app.main()
