"""Contact states to bytes and back, for a changelog-backed table.

A state is written as one compact JSON array (orjson):

    [version, first, recent, last_at, counts, seen_ids, seen_at, positions]

touches as [type, channel, campaign, at]; positions as {funnel: [stage, entered_at,
entry_at, dropped, sequence, trigger_channel]}. Stage positions are indexes into the stage
list the state was written under; the worker records those lists and moves positions by
stage name when a funnel changes (`processor.funnel.migration`). Times are integers
(microseconds); the canonical text of a touch's time is rebuilt on load, not stored.

Version 1 had no trigger_channel in its positions; it is still read (the channel that
opened those stage visits is unknown: None), and written back as version 2.

Every part of a state is bounded, so its encoding is: `max_state_bytes` gives the
limit for a set of funnels (strings at their longest and all control characters,
which JSON writes as 6-byte escapes; times and hashes at their widest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from processor.funnel.definition import Funnel
from processor.funnel.rulebook import counted_types
from processor.funnel.state import RECENT, ContactState, Limits, Position, Touch
from processor.funnel.timefmt import MAX_US, MIN_US, format_time
from processor.funnel.touchpoint import MAX_CAMPAIGN, MAX_CHANNEL, MAX_TYPE

VERSION = 2
_READS = (1, 2)  # version 1: positions without trigger_channel


class StateDecodeError(ValueError):
    """Stored bytes that are not a contact state this version can read."""


def _touch(t: Touch) -> list[Any]:
    return [t.type, t.channel, t.campaign, t.at]


def _load_touch(raw: list[Any]) -> Touch:
    kind, channel, campaign, at = raw
    return Touch(kind, channel, campaign, at, format_time(at))


def encode_state(state: ContactState) -> bytes:
    return orjson.dumps(
        [
            VERSION,
            _touch(state.first),
            [_touch(t) for t in state.recent],
            state.last_at,
            state.counts,
            state.seen_ids,
            state.seen_at,
            {
                name: [p.stage, p.entered_at, p.entry_at, p.dropped, p.sequence, p.trigger_channel]
                for name, p in state.positions.items()
            },
        ]
    )


def decode_state(data: bytes) -> ContactState:
    try:
        version, first, recent, last_at, counts, seen_ids, seen_at, positions = orjson.loads(data)
        if version not in _READS:
            raise StateDecodeError(f"state version {version!r}, this build reads {' and '.join(map(str, _READS))}")
        return ContactState(
            _load_touch(first),
            tuple(_load_touch(t) for t in recent),
            last_at,
            counts,
            tuple(seen_ids),
            tuple(seen_at),
            {name: Position(*p) for name, p in positions.items()},
        )
    except StateDecodeError:
        raise
    except (ValueError, TypeError) as exc:
        raise StateDecodeError(f"not a contact state: {exc}") from None


_CHAR = 6  # the most bytes JSON spends on one character: a control character, written \u00XX
_TIME = max(len(str(MIN_US)), len(str(MAX_US)))  # a time of the years 0001-9999, in µs
_HASH = len(str(2**64 - 1))  # an event id's 64-bit hash


def max_state_bytes(funnels: Sequence[Funnel], limits: Limits, dormant: Sequence[tuple[str, int]] = ()) -> int:
    """The most bytes `encode_state` can write for a contact of these funnels.

    Every touch kept (the first, the last RECENT) at the touchpoint schema's longest type,
    channel and campaign, and so every position's trigger channel; the dedup memory full;
    every funnel entered; counts at their caps; sequences at 2 x stages (each stage is
    entered once at most, with one drop-off at most). `dormant`: (name, stages) of funnels
    no longer configured whose positions a state still holds (processor/funnel/migration.py).
    """

    def text(chars: int) -> int:
        return 2 + _CHAR * chars

    def joined(parts: list[int]) -> int:  # [a,b,...] or {a,b,...}
        return 2 + sum(parts) + max(0, len(parts) - 1)

    touch = joined([text(MAX_TYPE), text(MAX_CHANNEL), text(MAX_CAMPAIGN), _TIME])
    counts = joined([len(orjson.dumps(kind)) + 1 + len(str(cap)) for kind, cap in counted_types(funnels).items()])
    held = [(f.name, len(f.stages)) for f in funnels] + list(dormant)
    positions = joined(
        [
            len(orjson.dumps(name))
            + 1
            + joined([len(str(stages - 1)), _TIME, _TIME, 5, len(str(2 * stages)), text(MAX_CHANNEL)])
            for name, stages in held
        ]
    )
    memory = limits.dedup_capacity
    return joined(
        [
            len(str(VERSION)),
            touch,
            joined([touch] * RECENT),
            _TIME,
            counts,
            joined([_HASH] * memory),
            joined([_TIME] * memory),
            positions,
        ]
    )
