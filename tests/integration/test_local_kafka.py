"""The local Apache Kafka the suite starts (localbrokers.apachekafka): a restart on its own data,
and its SASL_SSL listener (SCRAM-SHA-512 over TLS, with a CA made at test time).

The security tests build on the listener (the worker and the commands over SASL_SSL);
here it is shown that it lets in a client with the right password and refuses one
with a wrong password.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import SaslAuthenticationFailed
from aiokafka.helpers import create_ssl_context

from processor.config.settings import Settings
from processor.kafka import clients as kafkaio

pytestmark = pytest.mark.kafka_only


def test_a_stopped_broker_starts_again_on_its_data_with_the_same_address(
    own_kafka: Callable[..., Any], tmp_path: Any
) -> None:
    kafka = own_kafka().local
    settings = Settings(broker_url=kafka.url, data_dir=tmp_path, store="memory")
    kafkaio.create_topics(settings)
    records = [(b"c%d" % i, b'{"n": %d}' % i) for i in range(50)]
    assert kafkaio.produce_records(settings, settings.topic_touchpoints, records) == 50

    pid, address = kafka.pid, kafka.bootstrap
    assert kafka.stop() == 128 + signal.SIGTERM  # Kafka's own exit code after a SIGTERM, a clean shutdown
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(kafkaio.BrokerUnavailable):
        kafkaio.partition_counts(settings, [settings.topic_touchpoints], connect_timeout_s=1.0)

    kafka.start()
    assert kafka.bootstrap == address and kafka.pid != pid
    back = kafkaio.read_topic(settings, settings.topic_touchpoints, timeout_s=1.0, expect=50)
    assert sorted((r.key, r.value) for r in back) == sorted(records)
    assert kafka.log.read_text().count("---- starting") == 2  # one log on disk for both runs


def test_sasl_ssl_lets_in_the_right_password_and_refuses_a_wrong_one(broker: Any, sasl_ssl: Any, tmp_path: Any) -> None:
    user = sasl_ssl.user
    right = Settings.from_env({**sasl_ssl.env(user), "FUNNEL_DATA_DIR": str(tmp_path)})
    assert right.security_protocol == "SASL_SSL" and sasl_ssl.cafile.is_file()
    assert "BEGIN CERTIFICATE" in sasl_ssl.cafile.read_text()
    # kafka-python (the commands): create topics, produce, read back, all over SASL_SSL.
    kafkaio.create_topics(right)
    assert kafkaio.produce_records(right, right.topic_touchpoints, [(b"c1", b"{}")]) == 1
    assert [r.value for r in kafkaio.read_topic(right, right.topic_touchpoints, timeout_s=1.0, expect=1)] == [b"{}"]

    host, port = sasl_ssl.bootstrap.split(":")

    async def connect(password: str) -> None:
        opened: list[bool] = []  # aiokafka calls on_close only for a connection that was made
        conn = AIOKafkaConnection(
            host,
            int(port),
            security_protocol="SASL_SSL",
            ssl_context=create_ssl_context(cafile=str(sasl_ssl.cafile)),
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=user,
            sasl_plain_password=password,
            request_timeout_ms=10_000,
            on_close=lambda *_: opened.append(True),
        )
        try:
            await conn.connect()
        finally:
            # aiokafka leaves a refused connection open (its create_conn would drop it unclosed): close it,
            # and let the loop run the TLS close before asyncio.run ends.
            closed = conn.close()
            if opened:
                await asyncio.wait([closed], timeout=2.0)

    async def produce(password: str) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=sasl_ssl.bootstrap,
            security_protocol="SASL_SSL",
            ssl_context=create_ssl_context(cafile=str(sasl_ssl.cafile)),
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=user,
            sasl_plain_password=password,
        )
        await producer.start()
        try:
            await producer.send_and_wait(right.topic_touchpoints, b"{}", key=b"c2")
        finally:
            await producer.stop()

    # aiokafka (the worker): the right password authenticates and produces; a wrong one is refused.
    asyncio.run(connect(sasl_ssl.users[user]))
    asyncio.run(produce(sasl_ssl.users[user]))
    with pytest.raises(SaslAuthenticationFailed):
        asyncio.run(connect("not-the-password"))
    wrong = Settings.from_env({**sasl_ssl.env(user, password="not-the-password"), "FUNNEL_DATA_DIR": str(tmp_path)})
    with pytest.raises(kafkaio.KafkaIOError):
        kafkaio.partition_counts(wrong, [right.topic_touchpoints], connect_timeout_s=3.0)
    assert "Failed authentication with /127.0.0.1" in broker.local.log.read_text()
