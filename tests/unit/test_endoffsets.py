"""The end-offsets workaround (processor/worker/patches/endoffsets.py) reads its fetch over the
worker's own connection: with SASL_SSL settings its probe consumer gets them all (an earlier
copy passed only the broker addresses, so on a secured Kafka it could never connect)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from faust.types import TP

from processor.worker.patches import endoffsets


class Probe:
    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **config: Any) -> None:
        Probe.made.append(config)
        self.positions: dict[TP, int] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def assign(self, tps: list[TP]) -> None:
        pass

    def seek(self, tp: TP, offset: int) -> None:
        self.positions[tp] = offset

    async def getmany(self, timeout_ms: int) -> dict[TP, list[Any]]:
        return {}

    def highwater(self, tp: TP) -> int:
        return self.positions[tp] + 10  # what the fetch response says: ahead of ListOffsets


def test_the_probe_connects_with_the_workers_security_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endoffsets, "AIOKafkaConsumer", Probe)
    Probe.made.clear()
    context = object()
    connection = {
        "bootstrap_servers": ["127.0.0.1:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "funnel-worker",
        "sasl_plain_password": "not-printed",
        "ssl_context": context,
    }
    tp = TP("journeys-changelog", 0)
    got = asyncio.run(endoffsets.fetched_highwaters(connection, {tp: 5, TP("journeys-changelog", 1): 0}))
    assert got == {tp: 14, TP("journeys-changelog", 1): 0}  # the larger value; an empty partition is not probed
    [config] = Probe.made
    assert {k: config[k] for k in connection} == connection
    assert config["ssl_context"] is context
