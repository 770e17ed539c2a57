"""The worker's topic names, from the settings: the input, its re-keyed copy, the ticks, the table
changelogs and the outputs. Each name is made here only."""

from __future__ import annotations

from processor.config.settings import Settings

TABLES = ("journeys", "clocks")  # the worker's Faust tables: changelogs "{app_id}-{table}-changelog"


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.app_id}-{table}-changelog" for table in TABLES]


def definitions_topic(settings: Settings) -> str:
    """The compacted topic of the funnel definitions journeys were written under (one record per
    set of definitions a worker started with: processor/worker/state/migrate.py), named after the app id."""
    return f"{settings.app_id}-funnel-definitions"


def journeys_changelog(settings: Settings) -> str:
    return changelog_topics(settings)[TABLES.index("journeys")]


def rekeyed_topic(settings: Settings) -> str:
    """The internal topic of touchpoints re-keyed by contact (processor/worker/rekey.py), named after the app id."""
    return f"{settings.app_id}-touchpoints-by-contact"


def input_topic(settings: Settings) -> str:
    """The topic of touchpoints keyed by contact that the journeys agent reads: the input, or its re-keyed copy."""
    return rekeyed_topic(settings) if settings.rekeyed else settings.topic_touchpoints


def copartitioned_topics(settings: Settings) -> list[str]:
    """Topics whose partition i must hold the same contacts as partition i of input_topic."""
    return [settings.topic_ticks, *changelog_topics(settings)]


def output_topics(settings: Settings) -> list[str]:
    return [settings.topic_transitions, settings.topic_dropoffs, settings.topic_deadletter]


def all_topics(settings: Settings) -> list[str]:
    rekeyed = [rekeyed_topic(settings)] if settings.rekeyed else []
    return [settings.topic_touchpoints, *rekeyed, *copartitioned_topics(settings), *output_topics(settings)]
