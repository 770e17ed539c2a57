"""How to reach the brokers: one description, built from the settings, in each client's own words.

`Connection.of(settings)` holds everything a Kafka client needs to connect: the bootstrap
addresses, the security protocol, the SASL mechanism, user name and password, and the TLS
files. Each client library is given it in its own keywords, from this one description:

- kafka-python (`kafka_python()`): the commands' admin, producer and consumer
  (processor/kafka/clients.py, processor/kafka/admin.py);
- aiokafka (`aiokafka()`): the worker's own producers and consumers, the end-offsets probe,
  the gap reads and the step-by-step connection check (processor/kafka/connect.py);
- Faust (`processor.worker.app`): its broker credentials, from `sasl` and `ssl_context()`.

aiokafka and Faust take a TLS context, made here from the TLS files (the broker's host name
is checked); kafka-python takes the files' paths and builds its own.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.config.settings import Settings
from processor.config.values import Secret
from processor.kafka.errors import TlsFilesUnusable

TLS_PROTOCOLS = ("SSL", "SASL_SSL")


@dataclass(frozen=True, slots=True)
class Sasl:
    mechanism: str  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    username: str
    password: Secret = field(repr=False)


@dataclass(frozen=True, slots=True)
class Tls:
    cafile: Path | None  # None: the system's CAs
    certfile: Path | None  # the client's certificate and key, when the broker asks for one
    keyfile: Path | None
    key_password: Secret | None = field(repr=False)


@dataclass(frozen=True, slots=True)
class Connection:
    bootstrap: tuple[str, ...]  # 'host:port', in the order given
    security_protocol: str  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl: Sasl | None  # exactly with SASL_*
    tls: Tls | None  # exactly with SSL and SASL_SSL

    @classmethod
    def of(cls, settings: Settings) -> Connection:
        """The connection the settings describe (they were checked when built: SASL_* has all three SASL values)."""
        protocol = settings.security_protocol
        sasl = None
        if protocol.startswith("SASL_"):
            assert settings.sasl_mechanism and settings.sasl_username and settings.sasl_password is not None
            sasl = Sasl(settings.sasl_mechanism, settings.sasl_username, settings.sasl_password)
        tls = None
        if protocol in TLS_PROTOCOLS:
            tls = Tls(settings.ssl_cafile, settings.ssl_certfile, settings.ssl_keyfile, settings.ssl_key_password)
        return cls(tuple(settings.broker_hosts()), protocol, sasl, tls)

    def brokers(self) -> dict[str, Any]:
        """The keywords kafka-python and aiokafka share: addresses, protocol, SASL (password revealed)."""
        return {
            "bootstrap_servers": list(self.bootstrap),
            "security_protocol": self.security_protocol,
            **self.sasl_keywords(),
        }

    def sasl_keywords(self) -> dict[str, Any]:
        """The SASL keywords kafka-python and aiokafka share (password revealed), or none."""
        if self.sasl is None:
            return {}
        return {
            "sasl_mechanism": self.sasl.mechanism,
            "sasl_plain_username": self.sasl.username,
            "sasl_plain_password": self.sasl.password.reveal(),
        }

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients: only the keys that apply, secrets revealed."""
        config: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap),
            "security_protocol": self.security_protocol,
        }
        config.update(self.sasl_keywords())
        if self.tls is not None:
            for key, path in (
                ("ssl_cafile", self.tls.cafile),
                ("ssl_certfile", self.tls.certfile),
                ("ssl_keyfile", self.tls.keyfile),
            ):
                if path is not None:
                    config[key] = str(path)
            if self.tls.key_password is not None:
                config["ssl_password"] = self.tls.key_password.reveal()
        return config

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients: brokers, security, credentials, the TLS context."""
        config: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap),
            "security_protocol": self.security_protocol,
        }
        config.update(self.sasl_keywords())
        context = self.ssl_context()
        if context is not None:
            config["ssl_context"] = context
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL (the host name is checked), else None.

        Raises TlsFilesUnusable when the CA file, or the client's certificate and key, cannot be loaded.
        """
        tls = self.tls
        if tls is None:
            return None
        from aiokafka.helpers import create_ssl_context

        try:
            context: ssl.SSLContext = create_ssl_context(
                cafile=str(tls.cafile) if tls.cafile else None,
                certfile=str(tls.certfile) if tls.certfile else None,
                keyfile=str(tls.keyfile) if tls.keyfile else None,
                password=tls.key_password.reveal() if tls.key_password else None,
            )
        except ssl.SSLError as exc:
            files = [
                f"{var}={path}"
                for var, path in (
                    ("FUNNEL_SSL_CAFILE", tls.cafile),
                    ("FUNNEL_SSL_CERTFILE", tls.certfile),
                    ("FUNNEL_SSL_KEYFILE", tls.keyfile),
                )
                if path is not None
            ]
            raise TlsFilesUnusable(
                f"cannot load the TLS files ({', '.join(files) or 'the system CAs'}): {exc.reason or exc}; "
                "the CA file must hold PEM certificates, the key must match the certificate and its password"
            ) from None
        return context
