"""aiokafka's clients wait their retry backoff after a failed metadata update.

The patch is processor/worker/patches/metadataretry.py.
"""

from __future__ import annotations

import asyncio
import inspect
import time

from aiokafka.client import AIOKafkaClient

from processor.worker.patches.metadataretry import back_off_failed_metadata_updates


def test_a_failed_metadata_update_waits_the_retry_backoff() -> None:
    back_off_failed_metadata_updates()
    back_off_failed_metadata_updates()  # once only

    async def run() -> tuple[bool, float]:
        client = AIOKafkaClient(bootstrap_servers="127.0.0.1:1", retry_backoff_ms=300)  # never started
        started = time.monotonic()
        # no broker known: fails at once; the patched aiokafka method itself is what is tested
        updated = await client._metadata_update(client.cluster, set())  # noqa: SLF001
        return updated, time.monotonic() - started

    updated, took = asyncio.run(run())
    assert updated is False and took >= 0.29


def test_the_aiokafka_internals_it_patches_are_there() -> None:
    # Private on purpose: an aiokafka upgrade that moves them fails here.
    assert list(inspect.signature(AIOKafkaClient._metadata_update).parameters) == [  # noqa: SLF001
        "self",
        "cluster_metadata",
        "topics",
    ]
    assert "self._retry_backoff = retry_backoff_ms / 1000" in inspect.getsource(AIOKafkaClient.__init__)
    # The task that calls it again as soon as a failed connection asks for an update.
    called = inspect.getsource(AIOKafkaClient._md_synchronizer)  # noqa: SLF001
    assert "await self._metadata_update(self.cluster, topics)" in called
