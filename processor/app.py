"""The one place that builds the Faust application from the settings."""

from __future__ import annotations

from typing import Any

import faust
from aiokafka.helpers import create_ssl_context

from processor.settings import Settings


def ssl_context(settings: Settings) -> Any:
    """The TLS context for SSL and SASL_SSL, else None."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return create_ssl_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
        certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        password=settings.ssl_key_password.reveal() if settings.ssl_key_password else None,
    )


def aiokafka_connection(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for the worker's own aiokafka clients: brokers, security, credentials."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.broker_hosts(),
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism is not None:
        assert settings.sasl_password is not None
        config.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password.reveal(),
        )
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    return config


def _credentials(settings: Settings) -> Any:
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    assert settings.sasl_username is not None and settings.sasl_password is not None
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.reveal(),
        ssl_context=context,
        mechanism=settings.sasl_mechanism,
    )


def create_app(settings: Settings) -> faust.App:
    """A Faust app for the worker: raw bytes on every topic, tables in RocksDB or memory."""
    return faust.App(
        settings.app_id,
        broker=settings.faust_broker(),
        broker_credentials=_credentials(settings),
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee=settings.processing_guarantee,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(0.5, settings.session_timeout_s / 10),
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host=settings.web_host,
        autodiscover=False,
    )
