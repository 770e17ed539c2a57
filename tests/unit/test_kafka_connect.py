"""processor.kafka.connect without a broker: each step that fails gives its own message, in time.

The steps a real broker is needed for (a refused password, a certificate signed by another
CA, a mechanism the listener does not offer) are in tests/integration/test_sasl_ssl.py.
Here, loopback listeners of the test's own stand in for brokers that are absent, that
speak another protocol, or that never answer; each is closed by the test.
"""

from __future__ import annotations

import gc
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from processor.config.settings import Secret, Settings
from processor.kafka import connect as brokerconnect

PASSWORD = "a-password-that-must-not-show"  # checked to be absent from every message


def sasl_settings(port: int, tmp_path: Path, protocol: str = "SASL_SSL", **extra: object) -> Settings:
    return Settings(
        broker_url=f"127.0.0.1:{port}",
        data_dir=tmp_path,
        security_protocol=protocol,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="funnel-worker",
        sasl_password=Secret(PASSWORD),
        **extra,  # type: ignore[arg-type]
    )


@contextmanager
def listener(behaviour: str) -> Iterator[int]:
    """A loopback port that accepts connections and, for each: reads the first bytes and resets it
    ("close"), answers them with bytes of another protocol ("http"), or holds it open and silent
    until the test ends ("silent")."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if behaviour == "silent":
                held.append(conn)
                continue
            conn.settimeout(2.0)
            with suppress(OSError):
                conn.recv(1024)
                if behaviour == "http":
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                else:  # a reset, as a Kafka listener that does not speak the client's protocol does
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5.0)
        server.close()
        for conn in held:
            conn.close()


def refusal(settings: Settings, timeout_s: float = 3.0) -> tuple[brokerconnect.KafkaIOError, float]:
    started = time.monotonic()
    with pytest.raises(brokerconnect.KafkaIOError) as caught:
        brokerconnect.check_connection(settings, timeout_s)
    gc.collect()  # a socket or transport the check left open would warn here, failing the test
    message = str(caught.value)
    assert PASSWORD not in message and "\n" not in message
    return caught.value, time.monotonic() - started


def test_nothing_listening_is_an_unreachable_broker_at_once(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed on leaving: nothing listens there any more
    error, seconds = refusal(sasl_settings(port, tmp_path))
    assert isinstance(error, brokerconnect.BrokerUnavailable)
    assert f"cannot reach the Kafka broker at 127.0.0.1:{port} (FUNNEL_BROKER_URL)" in str(error)
    assert "refused" in str(error).lower() and seconds < 2.0


def test_a_listener_that_answers_tls_with_another_protocol_names_the_tls_handshake(tmp_path: Path) -> None:
    with listener("http") as port:
        error, _ = refusal(sasl_settings(port, tmp_path))
    assert isinstance(error, brokerconnect.TlsFailed)
    assert str(error).startswith(f"TLS handshake with 127.0.0.1:{port} failed (")
    assert "is it a TLS listener (FUNNEL_SECURITY_PROTOCOL=SASL_SSL)" in str(error)


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_a_listener_that_drops_the_connection_asks_whether_it_speaks_the_protocol(
    protocol: str, tmp_path: Path
) -> None:
    with listener("close") as port:
        error, _ = refusal(sasl_settings(port, tmp_path, protocol))
    assert str(error).startswith(
        f"the broker at 127.0.0.1:{port} dropped the connection while it was being set up as {protocol} ("
    )
    assert str(error).endswith(f"is that a {protocol} listener (FUNNEL_SECURITY_PROTOCOL)?")


@pytest.mark.parametrize(
    ("protocol", "steps"),
    [("SASL_SSL", "the TLS handshake and SASL authentication"), ("SASL_PLAINTEXT", "SASL authentication")],
)
def test_a_listener_that_never_answers_ends_within_the_timeout(protocol: str, steps: str, tmp_path: Path) -> None:
    with listener("silent") as port:
        error, seconds = refusal(sasl_settings(port, tmp_path, protocol), timeout_s=1.0)
    assert isinstance(error, brokerconnect.BrokerUnavailable)
    assert f"127.0.0.1:{port} accepted a connection but {steps} did not end within 1 s" in str(error)
    assert seconds < 5.0  # the 1 s timeout, not a hang


def test_a_ca_file_without_a_certificate_is_named(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text("not a certificate\n")
    with listener("close") as port:
        error, _ = refusal(sasl_settings(port, tmp_path, ssl_cafile=cafile))
    assert isinstance(error, brokerconnect.TlsFilesUnusable)
    assert str(error).startswith(f"cannot load the TLS files (FUNNEL_SSL_CAFILE={cafile}): ")


def test_plaintext_needs_only_a_tcp_connection(tmp_path: Path) -> None:
    with listener("close") as port:
        brokerconnect.check_connection(Settings(broker_url=f"127.0.0.1:{port}", data_dir=tmp_path), 1.0)
