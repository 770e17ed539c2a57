"""One description of the Kafka connection (processor/kafka/connection.py), and the three clients fed from it.

kafka-python (the commands), aiokafka (the worker's own clients, the connection check) and Faust
(the worker's app) each get the brokers, the security protocol, SASL and TLS from
`Connection.of(settings)`. The TLS context aiokafka and Faust take is built from the TLS files;
the files here are placeholders, so `create_ssl_context` is replaced by a recorder that returns a
real, empty context and keeps what it was given.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import faust
import pytest

from processor.config.settings import Settings
from processor.kafka.connect import aiokafka_connection
from processor.kafka.connection import Connection, Sasl, Tls
from processor.kafka.errors import TlsFilesUnusable
from processor.worker.app import faust_credentials

PASSWORD = "s3cr3t-hunter2"
KEY_PASSWORD = "k3y-pass-phrase"


def from_env(**env: str) -> Settings:
    return Settings.from_env({f"FUNNEL_{name}": value for name, value in env.items()})


def tls_files(directory: Path) -> dict[str, str]:
    names = {"SSL_CAFILE": "ca.pem", "SSL_CERTFILE": "client.pem", "SSL_KEYFILE": "client.key"}
    for filename in names.values():
        (directory / filename).write_text("-----BEGIN PLACEHOLDER-----\n")
    return {var: str(directory / filename) for var, filename in names.items()}


def sasl(protocol: str, mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {
        "SECURITY_PROTOCOL": protocol,
        "SASL_MECHANISM": mechanism,
        "SASL_USERNAME": "svc",
        "SASL_PASSWORD": PASSWORD,
    }


@pytest.fixture
def contexts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, Any], ssl.SSLContext]]:
    """Each TLS context made, with the keywords it was made from."""
    import aiokafka.helpers

    made: list[tuple[dict[str, Any], ssl.SSLContext]] = []

    def create_ssl_context(**given: Any) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        made.append((given, context))
        return context

    monkeypatch.setattr(aiokafka.helpers, "create_ssl_context", create_ssl_context)
    return made


def test_the_description_holds_brokers_protocol_sasl_and_tls(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    settings = from_env(
        BROKER_URL="kafka://a:9093;b:9093", SSL_KEY_PASSWORD=KEY_PASSWORD, **sasl("SASL_SSL", "PLAIN"), **files
    )
    connection = Connection.of(settings)
    assert connection == Connection(
        bootstrap=("a:9093", "b:9093"),
        security_protocol="SASL_SSL",
        sasl=Sasl("PLAIN", "svc", settings.sasl_password),  # type: ignore[arg-type]
        tls=Tls(
            Path(files["SSL_CAFILE"]),
            Path(files["SSL_CERTFILE"]),
            Path(files["SSL_KEYFILE"]),
            settings.ssl_key_password,
        ),
    )
    assert PASSWORD not in repr(connection) and KEY_PASSWORD not in repr(connection)


def test_sasl_ssl_reaches_kafka_python_aiokafka_and_faust_alike(
    tmp_path: Path, contexts: list[tuple[dict[str, Any], ssl.SSLContext]]
) -> None:
    files = tls_files(tmp_path)
    settings = from_env(SSL_KEY_PASSWORD=KEY_PASSWORD, **sasl("SASL_SSL"), **files)
    shared = {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": PASSWORD,
    }
    tls_given = {
        "cafile": files["SSL_CAFILE"],
        "certfile": files["SSL_CERTFILE"],
        "keyfile": files["SSL_KEYFILE"],
        "password": KEY_PASSWORD,
    }

    assert Connection.of(settings).kafka_python() == {
        **shared,
        "ssl_cafile": files["SSL_CAFILE"],
        "ssl_certfile": files["SSL_CERTFILE"],
        "ssl_keyfile": files["SSL_KEYFILE"],
        "ssl_password": KEY_PASSWORD,
    }

    aiokafka = aiokafka_connection(settings)
    assert [given for given, _ in contexts] == [tls_given]
    assert aiokafka == {**shared, "ssl_context": contexts[-1][1]}

    credentials = faust_credentials(settings)
    assert [given for given, _ in contexts] == [tls_given, tls_given]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == (
        "svc",
        PASSWORD,
        "SCRAM-SHA-512",
    )
    assert credentials.ssl_context is contexts[-1][1]
    assert credentials.protocol.value == "SASL_SSL"


def test_ssl_alone_gives_tls_and_no_sasl_to_each_client(
    tmp_path: Path, contexts: list[tuple[dict[str, Any], ssl.SSLContext]]
) -> None:
    files = tls_files(tmp_path)
    settings = from_env(SECURITY_PROTOCOL="SSL", SSL_CAFILE=files["SSL_CAFILE"])
    brokers = {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "SSL"}
    assert Connection.of(settings).kafka_python() == {**brokers, "ssl_cafile": files["SSL_CAFILE"]}
    assert aiokafka_connection(settings) == {**brokers, "ssl_context": contexts[-1][1]}
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context is contexts[-1][1]
    none = {"cafile": files["SSL_CAFILE"], "certfile": None, "keyfile": None, "password": None}
    assert [given for given, _ in contexts] == [none, none]


def test_sasl_plaintext_gives_sasl_and_no_tls_to_each_client(
    contexts: list[tuple[dict[str, Any], ssl.SSLContext]],
) -> None:
    settings = from_env(**sasl("SASL_PLAINTEXT", "SCRAM-SHA-256"))
    expected = {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": PASSWORD,
    }
    assert Connection.of(settings).kafka_python() == expected
    assert aiokafka_connection(settings) == expected
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.ssl_context is None and credentials.protocol.value == "SASL_PLAINTEXT"
    assert contexts == []


def test_plaintext_gives_brokers_only() -> None:
    settings = from_env(BROKER_URL="kafka://a:9092;b:9092")
    expected = {"bootstrap_servers": ["a:9092", "b:9092"], "security_protocol": "PLAINTEXT"}
    assert Connection.of(settings).kafka_python() == expected
    assert aiokafka_connection(settings) == expected
    assert faust_credentials(settings) is None


def test_tls_files_that_do_not_load_are_named(tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    settings = from_env(SECURITY_PROTOCOL="SSL", **files)
    with pytest.raises(TlsFilesUnusable, match=r"FUNNEL_SSL_CAFILE=.*ca\.pem, FUNNEL_SSL_CERTFILE="):
        Connection.of(settings).ssl_context()
