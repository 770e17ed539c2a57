"""Worker configuration, read once from FUNNEL_* environment variables.

This is the only place the worker's configuration is read. Every value is checked when
the settings are built (from the environment or directly), and a bad one stops the
worker with a message naming the variable, the value (secrets masked) and what is
wrong. The funnel core never sees these settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from processor.config import values
from processor.config.definitions import PRESETS, load_funnels
from processor.config.eventmapping import MappingError, load_mapping
from processor.config.values import Check, Secret
from processor.funnel.definition import Breakdown, DefinitionError, breakdowns_of
from processor.funnel.formats import FORMATS
from processor.funnel.timefmt import parse_duration
from processor.funnel.touchpoint import DEFAULT_FUTURE_TOLERANCE_US

__all__ = ["ENV_VARS", "Secret", "Settings", "SettingsError", "documented"]

PREFIX = "FUNNEL_"
# Variables the test suite reads (e.g. FUNNEL_TEST_BROKER); a worker started by it inherits them.
IGNORED_PREFIX = "FUNNEL_TEST_"
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::"})  # noqa: S104  (recognised, not bound)
STORES = ("rocksdb", "memory")
GUARANTEES = ("at_least_once", "exactly_once")
LOG_LEVELS = ("debug", "info", "warning", "error")
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
KEYINGS = ("contact", "any")  # FUNNEL_INPUT_KEYED: read directly, or re-keyed by contact (processor/worker/rekey.py)


class SettingsError(ValueError):
    """A setting that cannot work; the message starts with the variable's name."""


@dataclass(frozen=True)
class _Var:
    """One setting: its field, check, parser and printer, and what `worker --help` says it means."""

    field: str
    check: Check
    parse: Callable[[str], Any] = str  # environment text -> typed value
    show: Callable[[Any], str] = str  # typed value -> what describe() prints
    meaning: str = dataclasses.field(default="", kw_only=True)  # one line; a test requires it


_TOPICS = {
    "TOUCHPOINTS": "input: records in FUNNEL_INPUT_FORMAT (touchpoints keyed by contact_id, by default)",
    "TRANSITIONS": "output: stage transitions",
    "DROPOFFS": "output: drop-offs",
    "DEADLETTER": "refused records, with their reason and source",
    "TICKS": "internal clock ticks (same partitions as the input)",
}
_VARS: dict[str, _Var] = {
    "FUNNEL_BROKER_URL": _Var(
        "broker_url", values.brokers, meaning="Kafka brokers: one or more host:port, separated by ';' or ','"
    ),
    "FUNNEL_FUNNELS": _Var(
        "funnels",
        values.funnel_specs,
        values.funnel_list,
        ",".join,
        meaning="the funnels to run, in order: preset names or definition file paths, comma-separated",
    ),
    "FUNNEL_BREAKDOWNS": _Var(
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
        f"FUNNEL_TOPIC_{name}": _Var(f"topic_{name.lower()}", values.topic, meaning=meaning)
        for name, meaning in _TOPICS.items()
    },
    "FUNNEL_INPUT_FORMAT": _Var(
        "input_format",
        values.one_of(*FORMATS),
        meaning="the input's records: touchpoint, segment (Segment's spec, also RudderStack's) or snowplow "
        "(enriched events as the Analytics SDKs write them in JSON)",
    ),
    "FUNNEL_INPUT_KEYED": _Var(
        "input_keyed",
        lambda value: "" if value == "" else values.one_of(*KEYINGS)(value),
        meaning="contact: the input is keyed by contact_id and read directly; any: keyed any way, and re-keyed by "
        "contact through {app_id}-touchpoints-by-contact (default: contact for touchpoint, any for the other "
        "formats, which are always re-keyed)",
    ),
    "FUNNEL_INPUT_MAPPING": _Var(
        "input_mapping",
        values.optional(values.existing_file),
        Path,
        meaning="event mapping file (JSON, schemas/event-mapping) for segment and snowplow: event names to "
        "touchpoint types, UTM medium and source to channels (default: names in normal form, the default rules)",
    ),
    "FUNNEL_APP_ID": _Var(
        "app_id",
        values.topic,
        meaning="consumer group; the table changelogs are {app_id}-journeys-changelog and {app_id}-clocks-changelog",
    ),
    "FUNNEL_PARTITIONS": _Var(
        "partitions",
        values.between(1, 1024),
        values.whole,
        meaning="partitions of the input, the ticks and the changelogs; checked at start",
    ),
    "FUNNEL_REPLICATION_FACTOR": _Var(
        "replication_factor",
        values.between(1, 16),
        values.whole,
        meaning="replication factor of the topics made by topics create",
    ),
    "FUNNEL_WEB_PORT": _Var(
        "web_port", values.between(1, 65535), values.whole, meaning="web server port: /metrics and the queries"
    ),
    "FUNNEL_WEB_BIND": _Var("web_bind", values.host, meaning="address the web server binds; containers bind 0.0.0.0"),
    "FUNNEL_WEB_HOST": _Var(
        "web_host",
        values.host_or_derived,
        meaning="how other workers reach this one (default: the bind address, or the host name for 0.0.0.0 or ::)",
    ),
    "FUNNEL_WEB_TOKEN": _Var(
        "web_token",
        values.optional(values.bearer_token),
        values.bearer_token_text,
        meaning="secret (masked when printed): the query endpoints need Authorization: Bearer with it; "
        "at least 32 characters of A-Z a-z 0-9 - . _ ~ + / (e.g. openssl rand -hex 32)",
    ),
    "FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES": _Var(
        "web_allow_unauthenticated_queries",
        values.one_of("false", "true"),
        meaning="true serves the query endpoints without a token on a non-loopback bind; refused with a token",
    ),
    "FUNNEL_DATA_DIR": _Var("data_dir", values.directory, Path, meaning="where the RocksDB tables live"),
    "FUNNEL_STORE": _Var(
        "store",
        values.one_of(*STORES),
        meaning="rocksdb, or memory (the state is rebuilt from the changelog at start)",
    ),
    "FUNNEL_PROCESSING_GUARANTEE": _Var(
        "processing_guarantee",
        values.one_of(*GUARANTEES),
        meaning=(
            "at_least_once, or exactly_once (Kafka with transactions; not on Tansu; "
            "one worker per group, see Guarantees)"
        ),
    ),
    "FUNNEL_DEDUP_HORIZON": _Var(
        "dedup_horizon_us",
        values.positive,
        parse_duration,
        values.duration_text,
        meaning="a repeated event id within this span of the contact's own event times is a duplicate",
    ),
    "FUNNEL_FUTURE_TOLERANCE": _Var(
        "future_tolerance_us",
        values.positive,
        values.tolerance,
        values.tolerance_text,
        meaning="a touchpoint dated more than this after it arrived (its record's timestamp, at most the wall "
        "clock) is dead-lettered as future_timestamp; off for synthetic data dated in the future",
    ),
    "FUNNEL_TICK_INTERVAL": _Var(
        "tick_interval_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="how often each owned partition gets a clock tick",
    ),
    "FUNNEL_IDLE_AFTER": _Var(
        "idle_after_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="quiet time before a partition's clock follows the wall clock",
    ),
    "FUNNEL_BATCH_SIZE": _Var(
        "batch_size",
        values.between(1, 100_000),
        values.whole,
        meaning="records processed before the worker waits for Kafka's acknowledgements and writes states",
    ),
    "FUNNEL_BATCH_WAIT": _Var(
        "batch_wait_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="the longest a batch stays open (it also closes once the input is caught up); "
        "under half the session timeout",
    ),
    "FUNNEL_FETCH_MAX_WAIT": _Var(
        "fetch_max_wait_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="how long a fetch of the input may wait for data (Faust's own default is fixed at 1.5s)",
    ),
    "FUNNEL_SESSION_TIMEOUT": _Var(
        "session_timeout_s",
        values.positive,
        values.seconds,
        values.seconds_text,
        meaning="consumer group session timeout",
    ),
    "FUNNEL_LOG_LEVEL": _Var("log_level", values.one_of(*LOG_LEVELS), meaning="debug, info, warning or error"),
    "FUNNEL_END_OFFSETS_FROM_FETCH": _Var(
        "end_offsets_from_fetch",
        values.one_of("false", "true"),
        meaning="true works around brokers whose ListOffsets(latest) is short (Tansu 0.6)",
    ),
    "FUNNEL_SECURITY_PROTOCOL": _Var(
        "security_protocol", values.one_of(*PROTOCOLS), meaning="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    ),
    "FUNNEL_SASL_MECHANISM": _Var(
        "sasl_mechanism",
        values.optional(values.one_of(*SASL_MECHANISMS)),
        meaning="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with SASL_*",
    ),
    "FUNNEL_SASL_USERNAME": _Var(
        "sasl_username", values.optional(values.name), meaning="SASL user name; required with SASL_*"
    ),
    "FUNNEL_SASL_PASSWORD": _Var(
        "sasl_password",
        values.optional(values.secret),
        Secret,
        meaning="SASL password (never printed); required with SASL_*",
    ),
    "FUNNEL_SSL_CAFILE": _Var(
        "ssl_cafile",
        values.optional(values.existing_file),
        Path,
        meaning="CA certificates (PEM file) to verify the brokers; else the system's",
    ),
    "FUNNEL_SSL_CERTFILE": _Var(
        "ssl_certfile",
        values.optional(values.existing_file),
        Path,
        meaning="client certificate (PEM file), with FUNNEL_SSL_KEYFILE",
    ),
    "FUNNEL_SSL_KEYFILE": _Var(
        "ssl_keyfile",
        values.optional(values.existing_file),
        Path,
        meaning="client private key (PEM file), with FUNNEL_SSL_CERTFILE",
    ),
    "FUNNEL_SSL_KEY_PASSWORD": _Var(
        "ssl_key_password",
        values.optional(values.secret),
        Secret,
        meaning="password of the client private key (never printed)",
    ),
}
ENV_VARS: frozenset[str] = frozenset(_VARS)
_SASL_VARS = ("FUNNEL_SASL_MECHANISM", "FUNNEL_SASL_USERNAME", "FUNNEL_SASL_PASSWORD")
_SSL_VARS = ("FUNNEL_SSL_CAFILE", "FUNNEL_SSL_CERTFILE", "FUNNEL_SSL_KEYFILE", "FUNNEL_SSL_KEY_PASSWORD")


@dataclass(frozen=True)
class Settings:
    """The worker's configuration; see ENV for the variable that sets each field."""

    broker_url: str = "kafka://127.0.0.1:9092"
    funnels: tuple[str, ...] = PRESETS
    # The presets' breakdowns (a definition file names its own); see processor/breakdowns.py.
    breakdowns: tuple[Breakdown, ...] = breakdowns_of({"first_channel": None, "trigger_channel": None})
    topic_touchpoints: str = "touchpoints"
    topic_transitions: str = "funnel.transitions"
    topic_dropoffs: str = "funnel.dropoffs"
    topic_deadletter: str = "funnel.deadletter"
    topic_ticks: str = "funnel-processor-ticks"  # internal clock ticks, co-partitioned with touchpoints
    # The input's records, and whether they are keyed by contact_id ("contact") or re-keyed by contact
    # through an internal topic first ("any"; always for segment and snowplow): processor/worker/rekey.py.
    input_format: str = "touchpoint"
    input_keyed: str = ""  # "" = derived from input_format
    input_mapping: Path | None = None  # event names and channel rules of segment and snowplow
    app_id: str = "funnel-processor"  # consumer group and table changelog prefix
    partitions: int = 8
    replication_factor: int = 1
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    web_host: str = ""  # how other workers reach this one; "" = web_bind, or the hostname for a wildcard bind
    # The query endpoints (/journeys/, /funnels/) need `Authorization: Bearer <web_token>` when it is set.
    # Without one, a worker bound to a non-loopback address serves them only if the operator says so
    # (processor/worker/webaccess.py).
    web_token: Secret | None = None
    web_allow_unauthenticated_queries: str = "false"
    data_dir: Path = Path("data")
    store: str = "rocksdb"
    processing_guarantee: str = "at_least_once"
    dedup_horizon_us: int = parse_duration("24h")
    # A touchpoint dated more than this after it arrived (its record's timestamp, at most the
    # wall clock) is dead-lettered as future_timestamp; "off" (NO_FUTURE_BOUND) for synthetic data.
    future_tolerance_us: int = DEFAULT_FUTURE_TOLERANCE_US
    # A quiet partition fires a deadline about idle_after_s + up to tick_interval_s after it
    # passes; a touchpoint held back longer than idle_after_s by its producer may then find
    # its contact dropped, and is applied as a reactivation (SPEC: order).
    tick_interval_s: float = 0.5
    idle_after_s: float = 1.0
    # Records processed before their outputs' acknowledgements are awaited and their states
    # written (processor/worker/batch.py), and the longest a batch stays open.
    batch_size: int = 1000
    batch_wait_s: float = 0.05
    # The longest the broker may hold a fetch of the input. Faust's 1.5 s costs nothing on
    # Kafka, which answers as soon as records arrive; Tansu holds fetches longer (set 50ms).
    fetch_max_wait_s: float = 1.5
    session_timeout_s: float = 30.0
    log_level: str = "info"
    # Workaround for brokers whose ListOffsets(latest) is short (Tansu 0.6): take table
    # changelog high watermarks from a fetch instead (processor/worker/patches/endoffsets.py).
    end_offsets_from_fetch: str = "false"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: Secret | None = None

    ENV: ClassVar[Mapping[str, str]] = MappingProxyType({var: spec.field for var, spec in _VARS.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from FUNNEL_* variables (default: os.environ); an empty variable counts as unset."""
        env = os.environ if environ is None else environ
        _refuse_unknown(env)
        given: dict[str, Any] = {}
        for var, spec in _VARS.items():
            raw = env.get(var, "")
            text = raw if spec.parse is Secret else raw.strip()  # a password keeps its spaces
            if text:
                try:
                    given[spec.field] = spec.parse(text)
                except ValueError as exc:
                    raise SettingsError(f"{var}: {exc}") from None
        return cls(**given)

    def __post_init__(self) -> None:
        for var, spec in _VARS.items():
            try:
                object.__setattr__(self, spec.field, spec.check(getattr(self, spec.field)))
            except ValueError as exc:
                raise SettingsError(f"{var}: {exc}") from None
        if not self.web_host:
            host = socket.gethostname() if self.web_bind in _WILDCARD_BINDS else self.web_bind
            object.__setattr__(self, "web_host", host)
        self._check_topics_distinct()
        self._check_input()
        self._check_security()
        self._check_web_access()
        if self.batch_wait_s * 2 >= self.session_timeout_s:
            wait, session = values.seconds_text(self.batch_wait_s), values.seconds_text(self.session_timeout_s)
            raise SettingsError(
                f"FUNNEL_BATCH_WAIT: {wait} must be under half FUNNEL_SESSION_TIMEOUT ({session}): a batch "
                "waits at most this long to be flushed, also while the consumer group rebalances"
            )
        try:
            load_funnels(self.funnels)
        except DefinitionError as exc:
            raise SettingsError(f"FUNNEL_FUNNELS: {exc}") from None

    def _value(self, var: str) -> Any:
        return getattr(self, _VARS[var].field)

    def _check_topics_distinct(self) -> None:
        seen: dict[str, str] = {}  # Kafka refuses topics whose names differ only by '.' against '_'
        for var in (f"FUNNEL_TOPIC_{name}" for name in _TOPICS):
            topic = self._value(var)
            other = seen.setdefault(topic.replace(".", "_"), var)
            if other == var:
                continue
            if self._value(other) == topic:
                raise SettingsError(f"{var}: {topic!r} is already the topic of {other}")
            raise SettingsError(
                f"{var}: {topic!r} collides with {other} ({self._value(other)!r}): Kafka treats '.' and '_' alike"
            )

    def _check_input(self) -> None:
        native = self.input_format == "touchpoint"
        if not self.input_keyed:
            object.__setattr__(self, "input_keyed", "contact" if native else "any")
        elif self.input_keyed == "contact" and not native:
            raise SettingsError(
                f"FUNNEL_INPUT_KEYED: 'contact' applies only to FUNNEL_INPUT_FORMAT=touchpoint; {self.input_format} "
                "records are always re-keyed by contact (unset it, or set any)"
            )
        if self.input_mapping is not None:
            if native:
                raise SettingsError(
                    f"FUNNEL_INPUT_MAPPING: '{self.input_mapping}' is set, but FUNNEL_INPUT_FORMAT is touchpoint; "
                    "it applies only to segment and snowplow"
                )
            try:
                load_mapping(self.input_mapping)
            except MappingError as exc:
                raise SettingsError(f"FUNNEL_INPUT_MAPPING: {exc}") from None

    @property
    def rekeyed(self) -> bool:
        """Whether the input is re-keyed by contact through an internal topic (processor/worker/rekey.py)."""
        return self.input_keyed == "any"

    def _check_security(self) -> None:
        protocol = self.security_protocol
        for group, applies, needs in (
            (_SASL_VARS, protocol.startswith("SASL_"), "SASL_PLAINTEXT or SASL_SSL"),
            (_SSL_VARS, protocol.endswith("SSL"), "SSL or SASL_SSL"),
        ):
            for var in group:
                if self._value(var) is not None and not applies:
                    raise SettingsError(
                        f"{var}: '{self._value(var)}' is set, but FUNNEL_SECURITY_PROTOCOL is {protocol};"
                        f" it applies only to {needs}"
                    )
        for var in _SASL_VARS:
            if protocol.startswith("SASL_") and self._value(var) is None:
                raise SettingsError(f"{var}: required when FUNNEL_SECURITY_PROTOCOL is {protocol}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            given, missing = ("CERTFILE", "KEYFILE") if self.ssl_keyfile is None else ("KEYFILE", "CERTFILE")
            raise SettingsError(f"FUNNEL_SSL_{missing}: required with FUNNEL_SSL_{given} (they go together)")
        if self.ssl_key_password is not None and self.ssl_keyfile is None:
            raise SettingsError("FUNNEL_SSL_KEY_PASSWORD: '****' is set, but there is no FUNNEL_SSL_KEYFILE")

    def _check_web_access(self) -> None:
        if self.web_token is not None and self.web_allow_unauthenticated_queries == "true":
            raise SettingsError(
                "FUNNEL_WEB_ALLOW_UNAUTHENTICATED_QUERIES: 'true', but FUNNEL_WEB_TOKEN is set and the query"
                " endpoints need it; unset one of the two"
            )

    def describe(self) -> str:
        """One 'FUNNEL_X = value' line per setting, secrets masked: for printing at start."""
        lines = []
        for var, spec in _VARS.items():
            value = getattr(self, spec.field)
            lines.append(f"{var} = {'(unset)' if value is None else spec.show(value)}")
        return "\n".join(lines)

    def broker_hosts(self) -> list[str]:
        """['host:port', ...] in the order given."""
        return self.broker_url.removeprefix("kafka://").split(";")

    def faust_broker(self) -> str:
        """'kafka://h1:p1;h2:p2', the broker URL list faust expects."""
        return self.broker_url


def documented() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) per setting, in the order of the table: for `worker --help` and the README."""
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    rows = []
    for var, spec in _VARS.items():
        default = defaults[spec.field]
        shown = "(unset)" if default is None else "(derived)" if default == "" else spec.show(default)
        rows.append((var, shown, spec.meaning))
    return rows


def _refuse_unknown(env: Mapping[str, str]) -> None:
    """A FUNNEL_* variable the worker does not read is most likely a typo: refuse it, suggesting the closest."""
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper.startswith(IGNORED_PREFIX) or name in _VARS or not env[name]:
            continue
        # Compare what follows the prefix, which every name shares and would make all look alike.
        suffixes = sorted(var.removeprefix(PREFIX) for var in _VARS)
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), suffixes, n=1)
        hint = f"did you mean {PREFIX}{close[0]}?" if close else f"the variables read are {', '.join(sorted(_VARS))}"
        raise SettingsError(f"{name}: not a setting this worker reads; {hint}")
