"""Single setting values: parsing environment text and checking typed values.

A parser turns a variable's text into a typed value; a check takes a typed value
(from a parser, or given directly to Settings) and returns it normalised, or raises
ValueError saying what is wrong with it. Neither knows the variable's name: the
caller puts it in front of the message. Nothing here ever shows a secret's value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from processor.funnel.definition import BREAKDOWNS, CHANNEL_BREAKDOWNS, Breakdown, breakdowns_of
from processor.funnel.timefmt import US_PER_S, parse_duration
from processor.funnel.touchpoint import MAX_CAMPAIGN, MAX_CHANNEL, NO_FUTURE_BOUND
from processor.funnel.vocabulary import DEFAULT_CHANNELS, NONE, OTHER


class Secret:
    """A value that never prints: str() and repr() give '****'; reveal() gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "****"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


Check = Callable[[Any], Any]
_TOPIC = re.compile(r"[A-Za-z0-9._-]+")
_HOST = re.compile(r"[A-Za-z0-9._:-]+")
_BROKER_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[0-9]{1,5}")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # what a Bearer credential may hold (RFC 6750)
TOKEN_MIN_CHARS = 32


def whole(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def between(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not a whole number")
        if not low <= value <= high:
            raise ValueError(f"'{value}' is not between {low} and {high}")
        return value

    return check


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str:
        for choice in choices:
            if isinstance(value, str) and value.lower() == choice.lower():
                return choice
        raise ValueError(f"{value!r} is not one of {', '.join(choices)}")

    return check


def optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def positive(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return value


def topic(value: Any) -> str:
    if not isinstance(value, str) or not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} is not a Kafka topic name: use letters, digits, '.', '_' and '-' (not '.' or '..')"
        )
    if len(value) > 249:
        raise ValueError(f"{value[:20]!r}... is longer than 249 characters")
    return value


def host(value: Any) -> str:
    if not isinstance(value, str) or not _HOST.fullmatch(value):
        raise ValueError(f"{value!r} is not a host name or address")
    return value


def host_or_derived(value: Any) -> str:
    return "" if value == "" else host(value)


def a_path(value: Any) -> Path:
    if not isinstance(value, str | Path) or str(value) == "":
        raise ValueError(f"{value!r} is not a path")
    return Path(value)


def directory(value: Any) -> Path:
    path = a_path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"'{path}' exists and is not a directory")
    return path


def existing_file(value: Any) -> Path:
    path = a_path(value)
    if not path.is_file():
        raise ValueError(f"'{path}' does not exist or is not a file")
    return path


def name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is empty")
    return value


def secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("the value is empty or not text")
    return Secret(value)


def bearer_token(value: Any) -> Secret:
    """A token clients send as `Authorization: Bearer <token>`: long, and only characters a header carries."""
    token = secret(value)
    text = token.reveal()
    if not _TOKEN68.fullmatch(text):
        raise ValueError(
            "'****' holds characters a Bearer token cannot carry (spaces, quotes, ...): use letters, digits"
            " and - . _ ~ + / (e.g. `openssl rand -hex 32`)"
        )
    if len(text) < TOKEN_MIN_CHARS:
        raise ValueError(
            f"'****' is {len(text)} characters; a token has at least {TOKEN_MIN_CHARS} (e.g. `openssl rand -hex 32`)"
        )
    return token


def bearer_token_text(text: str) -> Secret:
    """Environment text -> Secret; surrounding whitespace (a file's final newline) is not part of a token."""
    return Secret(text.strip())


def funnel_specs(value: Any) -> tuple[str, ...]:
    specs = tuple(value) if isinstance(value, tuple | list) else ()
    if not specs or not all(isinstance(spec, str) and spec for spec in specs):
        raise ValueError(f"{value!r} is not a list of funnel preset names or definition files")
    return specs


def funnel_list(text: str) -> tuple[str, ...]:
    specs = tuple(part.strip() for part in text.split(",") if part.strip())
    if not specs:
        raise ValueError(f"{text!r} names no funnels: give preset names or definition file paths, comma-separated")
    return specs


def brokers(value: Any) -> str:
    """'kafka://h1:9092;h2:9092', 'h1:9092,h2:9092'... -> 'kafka://h1:9092;h2:9092'."""
    hosts = []
    for item in re.split(r"[;,]", value if isinstance(value, str) else ""):
        item = item.strip()
        if not item:
            continue
        scheme, sep, rest = item.rpartition("://")
        if sep and scheme.lower() != "kafka":
            raise ValueError(f"{item!r} uses the scheme {scheme + '://'!r}; only kafka:// is supported")
        hostname, colon, port = rest.rstrip("/").rpartition(":")
        if not colon or rest.endswith("]") or not hostname:
            raise ValueError(f"{item!r} has no port: write host:port")
        if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
            raise ValueError(f"{item!r}: the port {port!r} is not a number from 1 to 65535")
        if not _BROKER_HOST.fullmatch(hostname):
            raise ValueError(f"{item!r}: {hostname!r} is not a host name or address")
        hosts.append(f"{hostname}:{int(port)}")
    if not hosts:
        raise ValueError(f"{value!r} names no broker: write kafka://host:port, several separated by ';' or ','")
    return "kafka://" + ";".join(hosts)


def seconds(text: str) -> float:
    return parse_duration(text) / US_PER_S


def seconds_text(value: float) -> str:
    return duration_text(round(value * US_PER_S))


def duration_text(us: int) -> str:
    """Microseconds as text parse_duration reads back: '24h' rather than 86400000000."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if us % (size * US_PER_S) == 0:
            return f"{us // (size * US_PER_S)}{unit}"
    return f"{us / US_PER_S:.6f}".rstrip("0") + "s"


OFF = "off"


def tolerance(text: str) -> int:
    """A future tolerance: a duration ('5m', '2h'), or 'off' for no bound (synthetic data)."""
    if text.strip().lower() == OFF:
        return NO_FUTURE_BOUND
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{exc}; or '{OFF}' for no bound on the future") from None


def tolerance_text(us: int) -> str:
    return OFF if us >= NO_FUTURE_BOUND else duration_text(us)


# The same limits as the funnel-definition schema's breakdowns.
MAX_BREAKDOWN_VALUES = 50
_VALUE_CHARS = {"first_channel": MAX_CHANNEL, "first_campaign": MAX_CAMPAIGN, "trigger_channel": MAX_CHANNEL}


def breakdowns(value: Any) -> tuple[Breakdown, ...]:
    """Breakdowns held to the rules a definition file's are: known, once each, with at most
    MAX_BREAKDOWN_VALUES distinct values of the touchpoint's length, none of them 'other' or 'none'."""
    items = tuple(value) if isinstance(value, tuple | list) else None
    if items is None or not all(isinstance(item, Breakdown) for item in items):
        raise ValueError(f"{value!r} is not a list of breakdowns")
    seen: set[str] = set()
    for item in items:
        if item.by not in BREAKDOWNS:
            close = difflib.get_close_matches(item.by, BREAKDOWNS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"choose from {', '.join(BREAKDOWNS)}"
            raise ValueError(f"{item.by!r} is not a breakdown; {hint}")
        if item.by in seen:
            raise ValueError(f"{item.by} is named twice")
        seen.add(item.by)
        if not 0 < len(item.values) <= MAX_BREAKDOWN_VALUES:
            raise ValueError(f"{item.by} takes 1 to {MAX_BREAKDOWN_VALUES} values, got {len(item.values)}")
        for text in item.values:
            if not isinstance(text, str) or not 0 < len(text) <= _VALUE_CHARS[item.by]:
                raise ValueError(f"{item.by}: {text!r} is not a value of 1 to {_VALUE_CHARS[item.by]} characters")
            if text in (OTHER, NONE):
                raise ValueError(f"{item.by}: {text!r} is a label of its own (other values, missing values)")
        if len(set(item.values)) != len(item.values):
            raise ValueError(f"{item.by}: a value is listed twice")
    return tuple(sorted(items, key=lambda item: BREAKDOWNS.index(item.by)))


def breakdown_list(text: str) -> tuple[Breakdown, ...]:
    """'first_channel;first_campaign=spring,autumn' -> breakdowns; 'off' -> none.

    A breakdown alone takes its default values (channels: DEFAULT_CHANNELS); BY=v1,v2 names them.
    """
    if text.strip().lower() == OFF:
        return ()
    spec: dict[str, list[str] | None] = {}
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        by, equals, listed = item.partition("=")
        by = by.strip()
        if by in spec:
            raise ValueError(f"{by} is named twice")
        spec[by] = [v.strip() for v in listed.split(",") if v.strip()] if equals else None
        if equals and not spec[by]:
            raise ValueError(f"{by}= lists no values")
    unknown = [by for by in spec if by not in BREAKDOWNS]
    if unknown:
        breakdowns([Breakdown(unknown[0], ())])  # raises, with a did-you-mean
    if not spec:
        raise ValueError(f"{text!r} names no breakdown: give {', '.join(BREAKDOWNS)} or '{OFF}'")
    return breakdowns_of(spec)


def breakdown_text(value: tuple[Breakdown, ...]) -> str:
    """Breakdowns as breakdown_list reads them back."""
    if not value:
        return OFF
    defaults = {by: DEFAULT_CHANNELS for by in CHANNEL_BREAKDOWNS}
    return ";".join(
        item.by if defaults.get(item.by) == item.values else f"{item.by}={','.join(item.values)}" for item in value
    )
