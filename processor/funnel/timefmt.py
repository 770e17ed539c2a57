"""Event times as integer microseconds since the Unix epoch (UTC).

The core never reads the wall clock: every time it handles is given to it.
Integers keep arithmetic exact and make states cheap to store.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * US_PER_S
# Years 0001-9999 in UTC: what RFC 3339 can write.
MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _ONE_US

# RFC 3339 date-time: full date, "T" (or "t"/space, which the RFC allows),
# full time with optional fraction, and a mandatory offset ("Z" or +hh:mm).
# re.ASCII throughout: without it \d also matches other scripts' digits (U+0665, ARABIC-INDIC
# DIGIT FIVE), which int() and datetime then read, though no RFC 3339 time (nor the schema) has them.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.ASCII
)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])", re.ASCII)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# "YYYY-MM-DDTHH:MM:SSZ" (what most producers send): hours 00-23, minutes and seconds 00-59.
_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\dZ", re.ASCII)


@lru_cache(maxsize=1024)
def _midnight(day: str) -> int:
    """'YYYY-MM-DD' -> microseconds at 00:00 UTC; ValueError for a date that does not exist."""
    return (datetime.fromisoformat(day + "T00:00:00+00:00") - _EPOCH) // _ONE_US


def parse_time(text: str) -> int:
    """RFC 3339 timestamp with offset -> microseconds since the epoch.

    Raises ValueError with a readable message when the text is not one.
    """
    return parse_time_text(text)[0]


def parse_time_text(text: str) -> tuple[int, str]:
    """Like parse_time, also giving the time as `format_time` writes it.

    Text already in that form ("2026-01-01T10:00:00Z") is returned as it is, so the
    outputs that repeat a touchpoint's time cost no formatting.
    """
    if len(text) == 20 and _CANONICAL.fullmatch(text):
        try:
            midnight = _midnight(text[:10])
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date and time") from None
        return midnight + (int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])) * US_PER_S, text
    us = _parse_general(text)
    return us, format_time(us)


def _parse_general(text: str) -> int:
    if not _RFC3339.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp with an offset")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    frac = text.find(".", 19)
    if frac != -1:
        end = frac + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        if end - frac - 1 > 6:  # keep microsecond precision, drop the rest
            text = text[: frac + 7] + text[end:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date and time") from None
    us = (parsed - _EPOCH) // _ONE_US
    if not MIN_US <= us <= MAX_US:
        raise ValueError(f"{text!r} is outside the years 0001-9999 in UTC")
    return us


@lru_cache(maxsize=1024)
def _day(days: int) -> str:
    return (_EPOCH.date() + timedelta(days=days)).isoformat()


@lru_cache(maxsize=65536)  # outputs repeat times: entry, first and recent touches
def format_time(us: int) -> str:
    """Microseconds since the epoch -> RFC 3339 in UTC with a "Z" (fraction only if any)."""
    days, rest = divmod(us, _US_PER_DAY)
    secs, frac = divmod(rest, US_PER_S)
    hours, rest = divmod(secs, 3600)
    minutes, secs = divmod(rest, 60)
    if frac:
        return f"{_day(days)}T{hours:02d}:{minutes:02d}:{secs:02d}.{frac:06d}Z"
    return f"{_day(days)}T{hours:02d}:{minutes:02d}:{secs:02d}Z"


def seconds(us: int) -> float:
    """A duration in microseconds as seconds; never negative."""
    return us / US_PER_S if us > 0 else 0.0


def parse_duration(text: str | float | int) -> int:
    """A duration -> microseconds: "30d", "12h", "90m", "45s", "2w" or a number of seconds.

    Raises ValueError for anything else, including negative or zero durations.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, int | float):
        value = float(text)
    elif text.strip().startswith("-"):
        raise ValueError(f"duration must be positive, got {text!r}")
    else:
        match = _DURATION.fullmatch(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a duration (a number and a unit: 30d, 12h, 90m, 45s, 2w, 0.05s)")
        value = float(match.group(1)) * _UNIT_S[match.group(2)]
    if not value > 0:
        raise ValueError(f"duration must be positive, got {text!r}")
    return round(value * US_PER_S)
