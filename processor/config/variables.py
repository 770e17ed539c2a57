"""The FUNNEL_* variables: for each, the Settings field it sets, how its text is parsed, checked
and printed, and what `worker --help` and the README say it means. The table is read by
`processor.config.settings` only; each variable is described here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.config import values
from processor.config.values import Check, Secret
from processor.funnel.formats import FORMATS
from processor.funnel.timefmt import parse_duration

PREFIX = "FUNNEL_"
# Variables the test suite reads (e.g. FUNNEL_TEST_BROKER); a worker started by it inherits them.
IGNORED_PREFIX = "FUNNEL_TEST_"
STORES = ("rocksdb", "memory")
GUARANTEES = ("at_least_once", "exactly_once")
LOG_LEVELS = ("debug", "info", "warning", "error")
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KEYINGS = ("contact", "any")  # FUNNEL_INPUT_KEYED: read directly, or re-keyed by contact (processor/worker/rekey.py)


class SettingsError(ValueError):
    """A setting that cannot work; the message starts with the variable's name."""


@dataclass(frozen=True)
class Var:
    """One setting: its field, check, parser and printer, and what `worker --help` says it means."""

    field: str
    check: Check
    parse: Callable[[str], Any] = str  # environment text -> typed value
    show: Callable[[Any], str] = str  # typed value -> what describe() prints
    meaning: str = dataclasses.field(default="", kw_only=True)  # one line; a test requires it


TOPICS = {
    "TOUCHPOINTS": "input: records in FUNNEL_INPUT_FORMAT (touchpoints keyed by contact_id, by default)",
    "TRANSITIONS": "output: stage transitions",
    "DROPOFFS": "output: drop-offs",
    "DEADLETTER": "refused records, with their reason and source",
    "TICKS": "internal clock ticks (same partitions as the input)",
}
VARS: dict[str, Var] = {
    "FUNNEL_BROKER_URL": Var(
        "broker_url", values.brokers, meaning="Kafka brokers: one or more host:port, separated by ';' or ','"
    ),
    "FUNNEL_FUNNELS": Var(
        "funnels",
        values.funnel_specs,
        values.funnel_list,
        ",".join,
        meaning="the funnels to run, in order: preset names or definition file paths, comma-separated",
    ),
    "FUNNEL_BREAKDOWNS": Var(
        "breakdowns",
        values.breakdowns,
        values.breakdown_list,
        values.breakdown_text,
        meaning="what the presets' stage entries, exits and drop-offs are also counted by (a definition file names "
        "its own): first_channel, first_campaign, trigger_channel, separated by ';', each with =value,value... "
        "(channels default to organic, paid_search, email, direct, referral, social; campaigns must be listed); "
        "off for none",
    ),
    **{
        f"FUNNEL_TOPIC_{name}": Var(f"topic_{name.lower()}", values.topic, meaning=meaning)
        for name, meaning in TOPICS.items()
    },
    "FUNNEL_INPUT_FORMAT": Var(
        "input_format",
        values.one_of(*FORMATS),
        meaning="the input's records: touchpoint, segment (Segment's spec, also RudderStack's) or snowplow "
        "(enriched events as the Analytics SDKs write them in JSON)",
    ),
    "FUNNEL_INPUT_KEYED": Var(
        "input_keyed",
        lambda value: "" if value == "" else values.one_of(*KEYINGS)(value),
        meaning="contact: the input is keyed by contact_id and read directly; any: keyed any way, and re-keyed by "
        "contact through {app_id}-touchpoints-by-contact (default: contact for touchpoint, any for the other "
        "formats, which are always re-keyed)",
    ),
    "FUNNEL_INPUT_MAPPING": Var(
        "input_mapping",
        values.optional(values.existing_file),
        Path,
        meaning="event mapping file (JSON, schemas/event-mapping) for segment and snowplow: event names to "
        "touchpoint types, UTM medium and source to channels (default: names in normal form, the default rules)",
    ),
    "FUNNEL_APP_ID": Var(
        "app_id",
        values.topic,
        meaning="consumer group; the table changelogs are {app_id}-journeys-changelog and {app_id}-clocks-changelog",
    ),
    "FUNNEL_PARTITIONS": Var(
        "partitions",
        values.between(1, 1024),
        values.whole,
        meaning="partitions of the input, the ticks and the changelogs; checked at start",
    ),
    "FUNNEL_REPLICATION_FACTOR": Var(
        "replication_factor",
        values.between(1, 16),
        values.whole,
        meaning="replication factor of the topics made by topics create",
    ),
    "FUNNEL_WEB_PORT": Var(
        "web_port", values.between(1, 65535), values.whole, meaning="web server port: /metrics and the queries"
    ),
    "FUNNEL_WEB_BIND": Var("web_bind", values.host, meaning="address the web server binds; containers bind 0.0.0.0"),
    "FUNNEL_WEB_HOST": Var(
        "web_host",
        values.host_or_derived,
        meaning="how other workers reach this one (default: the bind address, or the host name for 0.0.0.0 or ::)",
    ),
    "FUNNEL_WEB_TOKEN": Var(
        "web_token",
        values.optional(values.bearer_token),
        values.bearer_token_text,
        meaning="secret (masked when printed): the query endpoints need Authorization: Bearer with it; "
        "at least 32 characters of A-Z a-z 0-9 - . _ ~ + / (e.g. openssl rand -hex 32)",
    ),
    "FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES": Var(
        "web_allow_unauthenticated_queries",
        values.one_of("false", "true"),
        meaning="true serves the query endpoints without a token on a non-loopback bind; refused with a token",
    ),
    "FUNNEL_DATA_DIR": Var("data_dir", values.directory, Path, meaning="where the RocksDB tables live"),
    "FUNNEL_STORE": Var(
        "store",
        values.one_of(*STORES),
        meaning="rocksdb, or memory (the state is rebuilt from the changelog at start)",
    ),
    "FUNNEL_PROCESSING_GUARANTEE": Var(
        "processing_guarantee",
        values.one_of(*GUARANTEES),
        meaning=(
            "at_least_once, or exactly_once (Kafka with transactions; not on Tansu; "
            "one worker per group, see Guarantees)"
        ),
    ),
    "FUNNEL_DEDUP_HORIZON": Var(
        "dedup_horizon_us",
        values.positive,
        parse_duration,
        values.duration_text,
        meaning="a repeated event id within this span of the contact's own event times is a duplicate",
    ),
    "FUNNEL_FUTURE_TOLERANCE": Var(
        "future_tolerance_us",
        values.positive,
        values.tolerance,
        values.tolerance_text,
        meaning="a touchpoint dated more than this after it arrived (its record's timestamp, at most the wall "
        "clock) is dead-lettered as future_timestamp; off for synthetic data dated in the future",
    ),
    "FUNNEL_TICK_INTERVAL": Var(
        "tick_interval_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="how often each owned partition gets a clock tick",
    ),
    "FUNNEL_IDLE_AFTER": Var(
        "idle_after_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="quiet time before a partition's clock follows the wall clock",
    ),
    "FUNNEL_BATCH_SIZE": Var(
        "batch_size",
        values.between(1, 100_000),
        values.whole,
        meaning="records processed before the worker waits for Kafka's acknowledgements and writes states",
    ),
    "FUNNEL_BATCH_WAIT": Var(
        "batch_wait_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="the longest a batch stays open (it also closes once the input is caught up); "
        "under half the session timeout",
    ),
    "FUNNEL_FETCH_MAX_WAIT": Var(
        "fetch_max_wait_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="how long a fetch of the input may wait for data (Faust's own default is fixed at 1.5s)",
    ),
    "FUNNEL_SESSION_TIMEOUT": Var(
        "session_timeout_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="consumer group session timeout",
    ),
    "FUNNEL_LOG_LEVEL": Var("log_level", values.one_of(*LOG_LEVELS), meaning="debug, info, warning or error"),
    "FUNNEL_END_OFFSETS_FROM_FETCH": Var(
        "end_offsets_from_fetch",
        values.one_of("false", "true"),
        meaning="true works around brokers whose ListOffsets(latest) is short (Tansu 0.6)",
    ),
    "FUNNEL_SECURITY_PROTOCOL": Var(
        "security_protocol", values.one_of(*PROTOCOLS), meaning="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    ),
    "FUNNEL_SASL_MECHANISM": Var(
        "sasl_mechanism",
        values.optional(values.one_of(*SASL_MECHANISMS)),
        meaning="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with SASL_*",
    ),
    "FUNNEL_SASL_USERNAME": Var(
        "sasl_username", values.optional(values.name), meaning="SASL user name; required with SASL_*"
    ),
    "FUNNEL_SASL_PASSWORD": Var(
        "sasl_password",
        values.optional(values.secret),
        Secret,
        meaning="SASL password (never printed); required with SASL_*",
    ),
    "FUNNEL_SSL_CAFILE": Var(
        "ssl_cafile",
        values.optional(values.existing_file),
        Path,
        meaning="CA certificates (PEM file) to verify the brokers; else the system's",
    ),
    "FUNNEL_SSL_CERTFILE": Var(
        "ssl_certfile",
        values.optional(values.existing_file),
        Path,
        meaning="client certificate (PEM file), with FUNNEL_SSL_KEYFILE",
    ),
    "FUNNEL_SSL_KEYFILE": Var(
        "ssl_keyfile",
        values.optional(values.existing_file),
        Path,
        meaning="client private key (PEM file), with FUNNEL_SSL_CERTFILE",
    ),
    "FUNNEL_SSL_KEY_PASSWORD": Var(
        "ssl_key_password",
        values.optional(values.secret),
        Secret,
        meaning="password of the client private key (never printed)",
    ),
}
SASL_VARS = ("FUNNEL_SASL_MECHANISM", "FUNNEL_SASL_USERNAME", "FUNNEL_SASL_PASSWORD")
SSL_VARS = ("FUNNEL_SSL_CAFILE", "FUNNEL_SSL_CERTFILE", "FUNNEL_SSL_KEYFILE", "FUNNEL_SSL_KEY_PASSWORD")
