"""The local Apache Kafka's random cluster id is one the storage tool accepts as an argument."""

from __future__ import annotations

import base64
import uuid

import pytest

from localbrokers import apachekafka


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # encodes as "-A..." in URL-safe base64
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    drawn = iter([dash_first, dash_first, uuid.UUID(int=7)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))
    cluster = apachekafka.new_cluster_id()
    assert cluster == base64.urlsafe_b64encode(uuid.UUID(int=7).bytes).rstrip(b"=").decode()
    assert len(cluster) == 22 and not cluster.startswith("-")
