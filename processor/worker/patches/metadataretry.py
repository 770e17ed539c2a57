"""A pause after a failed metadata update in aiokafka's clients (aiokafka 0.14).

While the broker is unreachable, aiokafka's metadata task retries at once: a failed
connection asks for a metadata update, which fails on the same connection and asks
again. Measured on the broker outage test (tests/integration/test_worker_broker_outage.py):
a 20 s outage cost the worker's clients about 85,000 connection attempts, and its log
170,000 error lines (17 MB). With this patch each client waits its retry backoff
(`retry_backoff_ms`, 100 ms by default) after a failed update, as it already does
between other retries; recovery after the outage is unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.client import AIOKafkaClient


def back_off_failed_metadata_updates() -> None:
    """Patch AIOKafkaClient._metadata_update (once) to sleep its retry backoff when it fails."""
    if getattr(AIOKafkaClient, "_funnel_metadata_backoff", False):
        return
    original = AIOKafkaClient._metadata_update  # noqa: SLF001 -- the aiokafka method patched here

    async def _metadata_update(self: Any, cluster_metadata: Any, topics: Any) -> bool:
        updated = bool(await original(self, cluster_metadata, topics))
        if not updated:
            await asyncio.sleep(self._retry_backoff)
        return updated

    setattr(AIOKafkaClient, "_metadata_update", _metadata_update)  # noqa: B010 - a deliberate, named patch
    setattr(AIOKafkaClient, "_funnel_metadata_backoff", True)  # noqa: B010
