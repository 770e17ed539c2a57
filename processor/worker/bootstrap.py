"""The one place that wires the worker: the Faust app, its topics and tables (through the
journeys agent and the re-keyer), the outbox, the metrics and the web pages, and that
starts it after the checks that must pass first.

`processor/cli/worker.py` only reads the settings and calls `run` (handed to it by the entry
point, processor/main.py); tests build the same
app with `build` or `build_app`, without starting it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from processor.config.definitions import load_funnels
from processor.config.settings import Settings
from processor.funnel.definition import Funnel
from processor.funnel.state import Limits
from processor.kafka import clients as kafkaio
from processor.kafka.connect import aiokafka_connection
from processor.kafka.topics import input_topic
from processor.worker.agent import JourneyAgent
from processor.worker.app import create_app
from processor.worker.metrics import FunnelMetrics
from processor.worker.outbox import FaustOutbox, KafkaOutbox
from processor.worker.patches.endoffsets import take_end_offsets_from_fetch
from processor.worker.patches.metadataretry import back_off_failed_metadata_updates
from processor.worker.patches.skippedrecords import SkippedWatch, consumer_config
from processor.worker.sensor import setup_lean_prometheus_sensor
from processor.worker.state.entry import Layout
from processor.worker.state.migrate import MigrationRefused, prepare
from processor.worker.state.sourcemarks import SourceMarks
from processor.worker.state.stagecounts import StageCounts
from processor.worker.task import Tasks
from processor.worker.transactions import LocalTables
from processor.worker.views import register_views
from processor.worker.webaccess import query_access

__all__ = ["NotReady", "build", "build_app", "journeys_agent", "run"]


class NotReady(Exception):
    """The worker cannot start: the broker is out of reach or its topics are not ready (the message says which)."""


def journeys_agent(
    app: faust.App,
    settings: Settings,
    funnels: Sequence[Funnel],
    registry: CollectorRegistry,
    layout: Layout | None = None,
) -> JourneyAgent:
    """The journeys agent and its parts: its tables, outbox, partition tasks, metrics, gap watch.

    `layout`: how journeys entries record these funnels, and how entries written under earlier
    definitions are read (made by the start-up check, processor/worker/state/migrate.py)."""
    funnels = tuple(funnels)
    layout = Layout(funnels) if layout is None else layout
    # Tables take no serializer arguments in faust 0.15.3: bytes types mean raw.
    table: dict[str, Any] = {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes}
    journeys = app.Table("journeys", **table)
    clocks = app.Table("clocks", **table)
    # Re-keyed input: the source records applied per partition, so a copy is never applied twice.
    marks = SourceMarks(clocks) if settings.rekeyed else None
    connection = aiokafka_connection(settings)
    exactly_once = settings.processing_guarantee == "exactly_once"
    outbox: KafkaOutbox | FaustOutbox = (
        FaustOutbox(app, input_topic(settings))  # exactly_once: outputs join the input's transactions
        if exactly_once
        else KafkaOutbox(connection, settings.partitions)
    )
    # The records a gap read fetches are the ones Faust's consumer would deliver: with
    # exactly_once, committed ones only (aborted records and markers are skipped).
    gaps = SkippedWatch(
        consumer_config(connection, committed_only=exactly_once), settings.app_id, lambda: app.consumer, "processing"
    )
    stage_counts = StageCounts(funnels, layout)
    metrics = FunnelMetrics(registry, funnels, stage_counts)
    limits = Limits(dedup_horizon_us=settings.dedup_horizon_us)
    tasks = Tasks(funnels, limits, journeys, clocks, outbox, stage_counts, marks, settings.partitions, layout)
    return JourneyAgent(
        app, settings, journeys=journeys, clocks=clocks, outbox=outbox, tasks=tasks, metrics=metrics, gaps=gaps
    )


def build(settings: Settings, funnels: Sequence[Funnel], layout: Layout | None = None) -> JourneyAgent:
    """The worker's journeys agent, on its Faust app with metrics and web pages (built, not started)."""
    app = create_app(settings)
    registry = CollectorRegistry()  # one registry: Faust's sensor and the funnel metrics, on /metrics
    setup_lean_prometheus_sensor(app, registry, name_prefix="funnel_faust")
    agent = journeys_agent(app, settings, funnels, registry, layout)
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


def run(settings: Settings, say: Callable[[str], None]) -> int:
    """Check the broker and topics, patch Faust where the settings ask, check the configured funnels
    against the definitions the stored journeys were written under, build the worker and run it
    until it stops. Raises `NotReady` before anything starts when a check fails; `say` takes the
    start-up check's notes (what changed), one line each."""
    notice = query_access(settings).notice  # the query endpoints' access, when it needs saying
    if notice is not None:
        say(notice)
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
    try:  # the configured funnels against the definitions the stored journeys were written under
        prepared = prepare(settings, funnels)
    except (MigrationRefused, kafkaio.KafkaIOError) as exc:
        raise NotReady(str(exc)) from exc
    for note in prepared.notes:
        say(note)
    agent = build(settings, funnels, prepared.layout)
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
