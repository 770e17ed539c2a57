"""Reaching the brokers, step by step, before a Kafka client is trusted with it.

kafka-python retries a failed bootstrap until its timeout and then says only that it could
not bootstrap, whatever the reason: a wrong password and a certificate signed by another
CA look alike, and the same as a broker that is down. So the commands and the worker's
start-up check the connection themselves first, one step at a time, and stop at the first
that fails with a message naming it:

1. TCP: some bootstrap address accepts a connection (BrokerUnavailable otherwise). A
   refused connection then fails at once with its reason; kafka-python 3.0 would also
   leave the sockets of refused attempts open.
2. TLS (SSL, SASL_SSL): the TLS files load (TlsFilesUnusable) and the broker's
   certificate verifies against FUNNEL_SSL_CAFILE, or the system's CAs (TlsFailed).
3. SASL (SASL_PLAINTEXT, SASL_SSL): the broker offers the mechanism and accepts the user
   name and password (AuthenticationFailed).

Steps 2 and 3 are one connection of aiokafka, the worker's own Kafka client, with the TLS
context the worker uses. Every message names the variables to fix; none holds a secret.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Any

from processor.config.settings import Settings
from processor.kafka.connection import Connection
from processor.kafka.errors import AuthenticationFailed as AuthenticationFailed
from processor.kafka.errors import BrokerUnavailable as BrokerUnavailable
from processor.kafka.errors import KafkaIOError as KafkaIOError
from processor.kafka.errors import TlsFailed as TlsFailed
from processor.kafka.errors import TlsFilesUnusable as TlsFilesUnusable

CLIENT_ID = "funnel-processor-connect-check"
CLOSE_WAIT_S = 2.0  # for the check's connection to close
# OpenSSL's verify codes for a chain that does not lead to a trusted CA
# (X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, _SELF_SIGNED_CERT_IN_CHAIN, _UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
# _UNABLE_TO_VERIFY_LEAF_SIGNATURE, _UNABLE_TO_GET_ISSUER_CERT).
UNTRUSTED_CHAIN = frozenset({18, 19, 20, 21, 2})
HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
IP_MISMATCH = 64  # X509_V_ERR_IP_ADDRESS_MISMATCH
EXPIRED = 10  # X509_V_ERR_CERT_HAS_EXPIRED


def aiokafka_connection(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (the worker's own producers and consumers, the
    end-offsets probe, the gap reads): `Connection.aiokafka`, from the one description of the
    connection (processor/kafka/connection.py) that kafka-python's and Faust's come from too."""
    return Connection.of(settings).aiokafka()


def check_connection(settings: Settings, timeout_s: float) -> None:
    """TCP, then TLS, then SASL, as the settings ask, within `timeout_s`; the first step that fails raises.

    Blocking, like the kafka-python clients it comes before: it runs its own event loop, so it is
    not for a coroutine (the worker calls it before Faust starts).
    """
    deadline = time.monotonic() + timeout_s
    address = _reachable(settings, deadline)
    connection = Connection.of(settings)
    protocol = connection.security_protocol
    if protocol == "PLAINTEXT":
        return
    context = connection.ssl_context()
    remaining = max(0.5, deadline - time.monotonic())
    try:
        handshake = _handshake(settings, connection, address, context, remaining)
        asyncio.run(asyncio.wait_for(handshake, remaining))
    except TimeoutError:
        steps = [
            name for name, done in (("the TLS handshake", context), ("SASL authentication", "SASL" in protocol)) if done
        ]
        step = " and ".join(steps)
        raise BrokerUnavailable(
            settings,
            f"{address} accepted a connection but {step} did not end within "
            f"{timeout_s:g} s: is it a {protocol} listener?",
        ) from None


def _reachable(settings: Settings, deadline: float) -> str:
    """The first bootstrap address that accepts a TCP connection; BrokerUnavailable if none does."""
    reasons = []
    for address in settings.broker_hosts():
        host, _, port = address.rpartition(":")
        try:
            remaining = max(0.05, deadline - time.monotonic())
            with socket.create_connection((host.strip("[]"), int(port)), timeout=remaining):
                return address
        except OSError as exc:
            reasons.append(f"{address}: {exc.strerror or exc}")
    raise BrokerUnavailable(settings, "; ".join(reasons))


async def _handshake(
    settings: Settings, connection: Connection, address: str, context: ssl.SSLContext | None, timeout_s: float
) -> None:
    from aiokafka import errors
    from aiokafka.conn import AIOKafkaConnection

    host, _, port = address.rpartition(":")
    opened: list[bool] = []  # aiokafka calls on_close only for a connection that was made
    conn = AIOKafkaConnection(
        host.strip("[]"),
        int(port),
        client_id=CLIENT_ID,
        request_timeout_ms=max(100, round(timeout_s * 1000)),
        ssl_context=context,
        security_protocol=connection.security_protocol,
        on_close=lambda *_: opened.append(True),
        **connection.sasl_keywords(),
    )
    try:
        await conn.connect()
    except (TimeoutError, errors.KafkaTimeoutError):  # aiokafka's own timeout: reported by check_connection
        raise TimeoutError from None
    except ssl.SSLCertVerificationError as exc:
        raise TlsFailed(_verification_failed(settings, address, exc)) from None
    except ssl.SSLError as exc:
        raise TlsFailed(
            f"TLS handshake with {address} failed ({exc.reason or exc}): is it a TLS listener "
            f"(FUNNEL_SECURITY_PROTOCOL={settings.security_protocol}), and if it asks for a client certificate, "
            "are FUNNEL_SSL_CERTFILE and FUNNEL_SSL_KEYFILE set?"
        ) from None
    except errors.UnsupportedSaslMechanismError:
        raise AuthenticationFailed(
            f"the broker at {address} does not offer SASL {settings.sasl_mechanism} (FUNNEL_SASL_MECHANISM) on "
            "this listener; ask its operator which mechanism it takes"
        ) from None
    except (errors.SaslAuthenticationFailed, errors.AuthenticationFailedError) as exc:
        raise AuthenticationFailed(
            f"authentication failed for user {settings.sasl_username!r} (SASL {settings.sasl_mechanism}) at "
            f"{address}: the broker refused the user name or password (FUNNEL_SASL_USERNAME, "
            f"FUNNEL_SASL_PASSWORD){_broker_says(exc)}"
        ) from None
    except (errors.KafkaError, OSError) as exc:  # e.g. TLS spoken to a plain listener, or the reverse
        protocol = settings.security_protocol
        raise KafkaIOError(
            f"the broker at {address} dropped the connection while it was being set up as {protocol} "
            f"({str(exc) or type(exc).__name__}): is that a {protocol} listener (FUNNEL_SECURITY_PROTOCOL)?"
        ) from None
    finally:
        # The socket is closed only once the loop has run the close (a TLS one exchanges close_notify
        # first); asyncio.run would otherwise end with it open. Bounded: a peer may never answer.
        closed = conn.close()
        if opened:
            await asyncio.wait([closed], timeout=CLOSE_WAIT_S)


def _verification_failed(settings: Settings, address: str, exc: ssl.SSLCertVerificationError) -> str:
    head = f"TLS certificate verification failed at {address}: "
    code, reason = exc.verify_code, exc.verify_message
    trusted = f"the CA in FUNNEL_SSL_CAFILE={settings.ssl_cafile}" if settings.ssl_cafile else "a CA the system trusts"
    if code in UNTRUSTED_CHAIN:
        hint = "" if settings.ssl_cafile else "; set FUNNEL_SSL_CAFILE to the CA that signed it"
        return f"{head}the broker's certificate is not signed by {trusted} ({reason}){hint}"
    if code in (HOSTNAME_MISMATCH, IP_MISMATCH):
        return f"{head}the broker's certificate is not valid for the address in FUNNEL_BROKER_URL ({reason})"
    if code == EXPIRED:
        return f"{head}the broker's certificate has expired ({reason})"
    return f"{head}{reason}"


def _broker_says(exc: BaseException) -> str:
    """The broker's own reason, when aiokafka passes it on."""
    text = str(exc.args[0]) if exc.args else ""
    return f": {text}" if text and not text.startswith("<") else ""
