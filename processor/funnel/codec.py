"""Contact states to bytes and back, for a changelog-backed table.

A state is written as one compact JSON array (orjson):

    [version, first, recent, last_at, counts, seen_ids, seen_at, positions]

touches as [type, channel, campaign, at]; positions as {funnel: [stage, entered_at,
entry_at, dropped, sequence]}. Stage positions are indexes, so a funnel whose stage
list changes must get a new name. Times are integers (microseconds); the canonical
text of a touch's time is rebuilt on load, not stored.
"""

from __future__ import annotations

from typing import Any

import orjson

from processor.funnel.journey import ContactState, Position, Touch
from processor.funnel.timefmt import format_time

VERSION = 1


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
            {name: [p.stage, p.entered_at, p.entry_at, p.dropped, p.sequence] for name, p in state.positions.items()},
        ]
    )


def decode_state(data: bytes) -> ContactState:
    try:
        version, first, recent, last_at, counts, seen_ids, seen_at, positions = orjson.loads(data)
        if version != VERSION:
            raise StateDecodeError(f"state version {version!r}, this build reads {VERSION}")
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
