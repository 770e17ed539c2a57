"""The one place that builds the Faust application from the settings."""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.web.base import BlueprintManager

from processor.config.settings import Settings
from processor.kafka.connection import Connection

FETCH_WAIT_ATTR = "funnel_fetch_max_wait_s"


def faust_credentials(settings: Settings) -> Any:
    """Faust's broker credentials, from the one description of the connection (processor/kafka/connection.py)."""
    connection = Connection.of(settings)
    if connection.security_protocol == "PLAINTEXT":
        return None
    context = connection.ssl_context()
    if connection.sasl is None:  # SSL
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=connection.sasl.username,
        password=connection.sasl.password.reveal(),
        ssl_context=context,
        mechanism=connection.sasl.mechanism,
    )


def create_app(settings: Settings) -> faust.App:
    """A Faust app for the worker: raw bytes on every topic, tables in RocksDB or memory."""
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker(),
        broker_credentials=faust_credentials(settings),
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
        # Faust's own web pages, each off: /table (raw table entries by key), /router (the
        # cluster's layout; forwarding a query looks its owner up in-process, not over HTTP),
        # the statistics at / and /assignment/, /graph, and /performance. The worker serves
        # processor/worker/views.py and /metrics only.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
    )
    # The status page Faust serves at / when its statistics are off has no setting: an empty
    # blueprint list drops it with the rest (applied when the web server starts).
    app.web.blueprints = BlueprintManager()
    set_fetch_wait(app, settings.fetch_max_wait_s)
    return app


def set_fetch_wait(app: faust.App, wait_s: float) -> None:
    """The longest the app's input consumer waits for a fetch (see _let_apps_set_fetch_wait)."""
    _let_apps_set_fetch_wait()
    setattr(app, FETCH_WAIT_ATTR, wait_s)  # read by the patched consumer factory


def _let_apps_set_fetch_wait() -> None:
    """Faust's consumer waits up to 1.5 s for a fetch (faust-streaming 0.15 fixes it; no setting).

    A broker answers a fetch as soon as new records arrive, so the wait costs no latency;
    but some hold it longer (Tansu 0.6), which delays every record at low rates by up
    to the wait. This lets each app set its own (FUNNEL_FETCH_MAX_WAIT); it is applied
    to the consumer before it starts its fetcher.
    """
    thread = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread, "_funnel_fetch_wait", False):
        return
    original = thread._create_worker_consumer  # noqa: SLF001 -- the faust method patched here, README Design

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        wait_s = getattr(self.app, FETCH_WAIT_ATTR, None)
        if wait_s is not None:
            consumer._fetch_max_wait_ms = round(wait_s * 1000)  # noqa: SLF001 -- aiokafka has no setter
        return consumer

    setattr(thread, "_create_worker_consumer", _create_worker_consumer)  # noqa: B010 - a deliberate, named patch
    setattr(thread, "_funnel_fetch_wait", True)  # noqa: B010
