"""A kafka-python client for the commands, opened only once the connection is checked.

The connection is checked step by step first (processor/kafka/connect.py): a broker that cannot
be reached within `connect_timeout_s` raises BrokerUnavailable naming the addresses, a certificate
that does not verify TlsFailed, refused credentials AuthenticationFailed; never a bare trace.
The client's keywords come from the one description of the connection (processor/kafka/connection.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaConsumer
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from processor.config.settings import Settings
from processor.kafka.connect import check_connection
from processor.kafka.connection import Connection
from processor.kafka.errors import BrokerUnavailable

CONNECT_TIMEOUT_S = 10.0  # how long a client may try to reach the broker before BrokerUnavailable
CLIENT_ID = "funnel-processor-tools"
_UNREACHABLE = (KafkaTimeoutError, KafkaConnectionError)


@contextmanager
def client(settings: Settings, make: Callable[..., Any], timeout_s: float, **extra: Any) -> Iterator[Any]:
    """A connected kafka-python client, once the connection is checked (TCP, TLS, SASL); timeouts
    after that become BrokerUnavailable."""
    config = {**Connection.of(settings).kafka_python(), "client_id": CLIENT_ID, **extra}
    started = time.monotonic()
    check_connection(settings, timeout_s)
    config["bootstrap_timeout_ms"] = round(max(1.0, timeout_s - (time.monotonic() - started)) * 1000)
    try:
        made = make(**config)
    except _UNREACHABLE as exc:
        raise BrokerUnavailable(settings, f"no answer within {timeout_s:g} s ({exc})") from None
    try:
        yield made
    except _UNREACHABLE as exc:
        raise BrokerUnavailable(settings, f"{type(exc).__name__}: {exc}") from None
    finally:
        made.close()


def consumer(settings: Settings, timeout_s: float, **extra: Any) -> Any:
    """A kafka-python consumer (as `client`) that commits nothing unasked and creates no topic."""
    return client(settings, KafkaConsumer, timeout_s, enable_auto_commit=False, allow_auto_create_topics=False, **extra)


def partition_counts(
    settings: Settings, topics: Iterable[str], *, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> dict[str, int | None]:
    """Partitions per topic; None for a topic that does not exist."""
    with consumer(settings, connect_timeout_s) as opened:
        return {topic: len(opened.partitions_for_topic(topic) or ()) or None for topic in topics}
