"""Times and durations are read in ASCII digits only (found by test_touchpoint_decode's hypothesis test).

Python's `\\d`, int() and datetime all accept other scripts' digits (ARABIC-INDIC DIGIT
FIVE reads as 5); RFC 3339, the touchpoint schema and the duration settings do not.
"""

from __future__ import annotations

import pytest

from processor.funnel.timefmt import parse_duration, parse_time

ARABIC = str.maketrans("0123456789", "".join(chr(0x0660 + n) for n in range(10)))  # U+0660..U+0669
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + n) for n in range(10)))


def other(text: str, digits: dict[int, int] = ARABIC) -> str:
    return text.translate(digits)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-01T00:5" + other("5") + ":00Z",  # the canonical form (hypothesis's example)
        other("2024") + "-01-01T00:00:00Z",
        "2024-01-01 00:00:00." + other("12") + "Z",  # the fraction, in the general form
        "2024-01-01T00:00:00+0" + other("1") + ":00",
        "2024-01-01T00:00:0" + other("5", FULLWIDTH) + "Z",
    ],
)
def test_a_timestamp_with_other_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not an RFC 3339 timestamp"):
        parse_time(text)


def test_the_same_timestamps_in_ascii_digits_are_read() -> None:
    assert parse_time("2024-01-01T00:55:00Z") == parse_time("2024-01-01 00:55:00.000+00:00")


@pytest.mark.parametrize("text", [other("5") + "m", "1" + other("0") + "s", other("3", FULLWIDTH) + "h"])
def test_a_duration_with_other_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
