"""`funnel-processor worker`: the Faust stream worker, configured from FUNNEL_* variables.

Before Faust starts, the settings are validated and printed (secrets masked), the
funnels are loaded, and the broker and topics are checked, so that a wrong value, an
unreachable broker, a certificate that does not verify, refused credentials or a
partition mismatch ends with one clear message and exit code 2, not a trace.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from processor.config.definitions import load_funnels
from processor.config.settings import Settings, SettingsError, documented
from processor.funnel.definition import Funnel
from processor.worker.webaccess import query_access

if TYPE_CHECKING:
    import faust

    from processor.worker.agent import JourneyAgent
    from processor.worker.state.entry import Layout


def _fail(message: str) -> int:
    print(f"funnel-processor worker: {message}", file=sys.stderr)
    return 2


def build_app(settings: Settings, funnels: Sequence[Funnel]) -> faust.App:
    """The worker's Faust app: its agent, its metrics and its web pages (built, not started)."""
    return build_agent(settings, funnels).app


def build_agent(settings: Settings, funnels: Sequence[Funnel], layout: Layout | None = None) -> JourneyAgent:
    """The worker's journey agent, on its Faust app with metrics and web pages (built, not started)."""
    # Faust and the Kafka clients load only for this command, keeping the others quick.
    from prometheus_client import CollectorRegistry

    from processor.worker.agent import JourneyAgent
    from processor.worker.app import create_app
    from processor.worker.sensor import setup_lean_prometheus_sensor
    from processor.worker.views import register_views

    app = create_app(settings)
    registry = CollectorRegistry()  # one registry: Faust's sensor and the funnel metrics, on /metrics
    setup_lean_prometheus_sensor(app, registry, name_prefix="funnel_faust")
    agent = JourneyAgent(app, settings, funnels, registry, layout)
    if settings.rekeyed:  # input keyed any way: re-keyed by contact first (processor/worker/rekey.py)
        from processor.config.eventmapping import load_mapping
        from processor.worker.rekey import Rekeyer

        agent.upstream = Rekeyer(app, settings, load_mapping(settings.input_mapping), agent.metrics, registry)
    register_views(app, agent, query_access(settings))
    return agent


def _run(args: argparse.Namespace) -> int:
    import faust

    from processor.kafka import clients as kafkaio

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(str(exc))
    print("funnel-processor worker settings:\n" + settings.describe(), file=sys.stderr, flush=True)
    notice = query_access(settings).notice
    if notice is not None:
        print(f"funnel-processor worker: {notice}", file=sys.stderr, flush=True)
    funnels = load_funnels(settings.funnels, settings.breakdowns)
    try:  # reaching the broker (TCP, TLS, SASL: processor/kafka/connect.py), then its topics
        problems = kafkaio.check_partitions(settings)
    except kafkaio.KafkaIOError as exc:
        return _fail(str(exc))
    if problems:
        return _fail("topics are not ready:\n  " + "\n  ".join(problems))
    from processor.worker.patches.metadataretry import back_off_failed_metadata_updates

    back_off_failed_metadata_updates()
    if settings.end_offsets_from_fetch == "true":
        from processor.kafka.connect import aiokafka_connection
        from processor.worker.patches.endoffsets import take_end_offsets_from_fetch

        take_end_offsets_from_fetch(aiokafka_connection(settings))
    from processor.worker.state.migrate import MigrationRefused, prepare

    try:  # the configured funnels against the definitions the stored journeys were written under
        prepared = prepare(settings, funnels)
    except (MigrationRefused, kafkaio.KafkaIOError) as exc:
        return _fail(str(exc))
    for note in prepared.notes:
        print(f"funnel-processor worker: {note}", file=sys.stderr, flush=True)
    agent = build_agent(settings, funnels, prepared.layout)
    app = agent.app
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    if settings.processing_guarantee != "exactly_once" or settings.store != "rocksdb":
        worker.execute_from_commandline()
        return 0
    from processor.worker.transactions import LocalTables

    tables = LocalTables(app.conf.tabledir)
    tables.take_over()
    try:
        worker.execute_from_commandline()
    except SystemExit as done:
        if done.code in (0, None) and agent.commits is not None and agent.commits.ended:
            tables.stopped_cleanly()
        raise
    return 0


def settings_help(width: int = 79) -> str:
    """Every setting with its default and meaning, from the table the settings are validated with."""
    lines = ["settings (FUNNEL_* environment variables; an empty one counts as unset):"]
    for var, default, meaning in documented():
        lines.append(f"  {var} = {default}")
        lines += textwrap.wrap(
            meaning, width, initial_indent=" " * 6, subsequent_indent=" " * 6, break_on_hyphens=False
        )
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    description = (
        "Consume touchpoints from Kafka, keep every contact's journey in Faust tables, and emit transitions, "
        "drop-offs and dead letters. Configured from FUNNEL_* environment variables, checked before anything "
        "starts; the settings are printed (secrets masked) at start."
    )
    parser = sub.add_parser(
        "worker",
        help="run the stream worker (configured from FUNNEL_* environment variables)",
        description="\n".join(textwrap.wrap(description, 79)),
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=_run)
