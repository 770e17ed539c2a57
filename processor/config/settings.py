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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from processor.config import crosschecks, values
from processor.config.definitions import PRESETS, load_funnels
from processor.config.eventmapping import MappingError, load_mapping
from processor.config.values import Secret
from processor.config.variables import IGNORED_PREFIX, PREFIX, VARS, SettingsError
from processor.funnel.definition import Breakdown, DefinitionError, breakdowns_of
from processor.funnel.timefmt import parse_duration
from processor.funnel.touchpoint import DEFAULT_FUTURE_TOLERANCE_US

__all__ = ["ENV_VARS", "Secret", "Settings", "SettingsError", "documented"]

ENV_VARS: frozenset[str] = frozenset(VARS)
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::"})  # noqa: S104  (recognised, not bound)


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

    ENV: ClassVar[Mapping[str, str]] = MappingProxyType({var: spec.field for var, spec in VARS.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from FUNNEL_* variables (default: os.environ); an empty variable counts as unset."""
        env = os.environ if environ is None else environ
        _refuse_unknown(env)
        given: dict[str, Any] = {}
        for var, spec in VARS.items():
            raw = env.get(var, "")
            text = raw if spec.parse is Secret else raw.strip()  # a password keeps its spaces
            if text:
                try:
                    given[spec.field] = spec.parse(text)
                except ValueError as exc:
                    raise SettingsError(f"{var}: {exc}") from None
        return cls(**given)

    def __post_init__(self) -> None:
        for var, spec in VARS.items():
            try:
                object.__setattr__(self, spec.field, spec.check(getattr(self, spec.field)))
            except ValueError as exc:
                raise SettingsError(f"{var}: {exc}") from None
        if not self.web_host:
            host = socket.gethostname() if self.web_bind in _WILDCARD_BINDS else self.web_bind
            object.__setattr__(self, "web_host", host)
        crosschecks.topics_are_distinct(self)
        self._check_input()
        crosschecks.security_fits_protocol(self)
        crosschecks.web_access_is_clear(self)
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

    def describe(self) -> str:
        """One 'FUNNEL_X = value' line per setting, secrets masked: for printing at start."""
        lines = []
        for var, spec in VARS.items():
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
    for var, spec in VARS.items():
        default = defaults[spec.field]
        shown = "(unset)" if default is None else "(derived)" if default == "" else spec.show(default)
        rows.append((var, shown, spec.meaning))
    return rows


def _refuse_unknown(env: Mapping[str, str]) -> None:
    """A FUNNEL_* variable the worker does not read is most likely a typo: refuse it, suggesting the closest."""
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper.startswith(IGNORED_PREFIX) or name in VARS or not env[name]:
            continue
        # Compare what follows the prefix, which every name shares and would make all look alike.
        suffixes = sorted(var.removeprefix(PREFIX) for var in VARS)
        close = difflib.get_close_matches(upper.removeprefix(PREFIX), suffixes, n=1)
        hint = f"did you mean {PREFIX}{close[0]}?" if close else f"the variables read are {', '.join(sorted(VARS))}"
        raise SettingsError(f"{name}: not a setting this worker reads; {hint}")
