"""The one place that wires the worker: the Faust app, its topics and tables (through the
journeys agent and the re-keyer), the outbox, the metrics and the web pages, and that
starts it after the checks that must pass first.

`processor/cli/worker.py` only reads the settings and calls `run`; tests build the same
app with `build` or `build_app`, without starting it.
"""

from __future__ import annotations

from collections.abc import Sequence

import faust
from prometheus_client import CollectorRegistry

from processor.config.definitions import load_funnels
from processor.config.settings import Settings
from processor.funnel.definition import Funnel
from processor.kafka import clients as kafkaio
from processor.kafka.connect import aiokafka_connection
from processor.worker.agent import JourneyAgent
from processor.worker.app import create_app
from processor.worker.patches.endoffsets import take_end_offsets_from_fetch
from processor.worker.patches.metadataretry import back_off_failed_metadata_updates
from processor.worker.sensor import setup_lean_prometheus_sensor
from processor.worker.transactions import LocalTables
from processor.worker.views import register_views
from processor.worker.webaccess import query_access

__all__ = ["NotReady", "build", "build_app", "run"]


class NotReady(Exception):
    """The worker cannot start: the broker is out of reach or its topics are not ready (the message says which)."""


def build(settings: Settings, funnels: Sequence[Funnel]) -> JourneyAgent:
    """The worker's journeys agent, on its Faust app with metrics and web pages (built, not started)."""
    app = create_app(settings)
    registry = CollectorRegistry()  # one registry: Faust's sensor and the funnel metrics, on /metrics
    setup_lean_prometheus_sensor(app, registry, name_prefix="funnel_faust")
    agent = JourneyAgent(app, settings, funnels, registry)
    if settings.rekeyed:  # input keyed any way: re-keyed by contact first (processor/worker/rekey.py)
        from processor.config.eventmapping import load_mapping
        from processor.worker.rekey import Rekeyer

        rekeyer = Rekeyer(app, settings, load_mapping(settings.input_mapping), agent.metrics, registry)
        agent.idle.upstream = rekeyer  # its backlog holds the idle clock back
    register_views(app, agent, query_access(settings))
    return agent


def build_app(settings: Settings, funnels: Sequence[Funnel]) -> faust.App:
    """The worker's Faust app: its agent, its metrics and its web pages (built, not started)."""
    return build(settings, funnels).app


def run(settings: Settings) -> int:
    """Check the broker and topics, patch Faust where the settings ask, build the worker and run it
    until it stops. Raises `NotReady` before anything starts when the checks fail."""
    funnels = load_funnels(settings.funnels, settings.breakdowns)
    try:  # reaching the broker (TCP, TLS, SASL: processor/kafka/connect.py), then its topics
        problems = kafkaio.check_partitions(settings)
    except kafkaio.KafkaIOError as exc:
        raise NotReady(str(exc)) from exc
    if problems:
        raise NotReady("topics are not ready:\n  " + "\n  ".join(problems))
    back_off_failed_metadata_updates()
    if settings.end_offsets_from_fetch == "true":
        take_end_offsets_from_fetch(aiokafka_connection(settings))
    agent = build(settings, funnels)
    app = agent.app
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    if settings.processing_guarantee != "exactly_once" or settings.store != "rocksdb":
        worker.execute_from_commandline()
        return 0
    tables = LocalTables(app.conf.tabledir)
    tables.take_over()
    try:
        worker.execute_from_commandline()
    except SystemExit as done:
        if done.code in (0, None) and agent.commits is not None and agent.commits.ended:
            tables.stopped_cleanly()
        raise
    return 0
