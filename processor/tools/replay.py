"""The replay: a touchpoint file through the core, outputs as JSONL (`funnel-processor replay`).

With --input-format segment or snowplow the lines are Segment or Snowplow events, turned
into touchpoints as the worker turns them (processor/funnel/formats.py, with --mapping);
Segment's identify, alias and group calls are counted in the summary and passed over.

The replay is the reference the worker is held to: same input, same outputs. It uses
the event-time clock alone, then fires what is due at --until. Like the worker, it
refuses a touchpoint dated more than a tolerance after its arrival (future_timestamp):
every line counts as arriving at --now (default: the wall clock when the replay
starts), so a replay and a worker given the same "now" agree.
"""

from __future__ import annotations

import gc
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from processor.config.eventmapping import MappingError, load_mapping
from processor.funnel.deadletter import dead_letter, file_source
from processor.funnel.definition import Funnel
from processor.funnel.engine import Engine
from processor.funnel.formats import Skipped, decoder
from processor.funnel.state import Limits
from processor.funnel.timefmt import format_time
from processor.funnel.touchpoint import DEFAULT_FUTURE_TOLERANCE_US, Invalid, Touchpoint, check_not_ahead, decode

_FLUSH_EVERY = 4096


class UntilTooEarly(ValueError):
    pass


@dataclass
class ReplayStats:
    touchpoints: int = 0
    dead_letters: int = 0
    outputs: int = 0
    duplicates: int = 0
    late: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # records of a known kind that are no touchpoint

    def summary(self) -> str:
        """The one line printed on stderr at the end of a replay."""
        text = (
            f"{_count(self.touchpoints, 'touchpoint')} read, {_count(self.outputs, 'output')} written, "
            f"{_count(self.dead_letters, 'dead letter')}, {_count(self.duplicates, 'duplicate')}"
        )
        if self.skipped:
            kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.skipped.items()))
            text += f", {sum(self.skipped.values()):,} skipped ({kinds})"
        return text + (f", {self.late:,} late (out of event-time order)" if self.late else "")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def run_replay(
    lines: Iterable[bytes],
    source: str,
    funnels: Sequence[Funnel],
    out: BinaryIO,
    errors: BinaryIO,
    until: int | None = None,
    limits: Limits | None = None,
    now: int | None = None,
    future_tolerance: int = DEFAULT_FUTURE_TOLERANCE_US,
    decode: Callable[[bytes], Touchpoint] = decode,
) -> ReplayStats:
    """Replay touchpoint lines; write outputs to `out`, dead letters to `errors`.

    `decode` reads a line in the input's format (processor/funnel/formats.py `decoder`).

    With `now` (µs), a touchpoint dated more than `future_tolerance` after it is
    dead-lettered as future_timestamp and changes nothing; without, none is.
    Raises UntilTooEarly (after writing what came before) when a touchpoint is later
    than `until`.
    """
    with _collector_paused():
        return _replay(lines, source, funnels, out, errors, until, limits, now, future_tolerance, decode)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the replay.

    Contact states and outputs are acyclic (tuples, dicts, strings), so reference
    counting frees them all; the collector would only rescan millions of live
    tuples over and over, which measured as half the replay's time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _replay(
    lines: Iterable[bytes],
    source: str,
    funnels: Sequence[Funnel],
    out: BinaryIO,
    errors: BinaryIO,
    until: int | None,
    limits: Limits | None,
    now: int | None,
    future_tolerance: int,
    decode: Callable[[bytes], Touchpoint],
) -> ReplayStats:
    engine = Engine(funnels, limits=limits)
    stats = ReplayStats()
    pending: list[bytes] = []
    dumps = orjson.dumps
    for number, line in enumerate(lines, 1):
        record = line.rstrip(b"\n")
        if not record.strip():
            continue
        try:
            tp = decode(record)
            if now is not None:
                check_not_ahead(tp, now, future_tolerance)
        except Skipped as skipped:
            stats.skipped[skipped.kind] += 1
            continue
        except Invalid as bad:
            stats.dead_letters += 1
            letter = dead_letter(bad.reason, bad.detail, record, file_source(source, number))
            errors.write(dumps(letter) + b"\n")
            continue
        if until is not None and tp.at > until:
            _write(out, pending)
            raise UntilTooEarly(
                f"--until {format_time(until)} is earlier than the touchpoint on line {number} "
                f"({format_time(tp.at)}); use a later --until or none"
            )
        stats.touchpoints += 1
        for output in engine.observe(tp):
            pending.append(dumps(output))
        if len(pending) >= _FLUSH_EVERY:
            stats.outputs += _write(out, pending)
    if engine.clock is not None or until is not None:
        final = until if until is not None else engine.clock
        assert final is not None
        pending.extend(dumps(o) for o in engine.advance_to(final))
    stats.outputs += _write(out, pending)
    stats.duplicates, stats.late = engine.duplicates, engine.late
    return stats


def _write(out: BinaryIO, pending: list[bytes]) -> int:
    count = len(pending)
    if count:
        out.write(b"\n".join(pending) + b"\n")
        pending.clear()
    return count


@contextmanager
def open_input(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
    else:
        with Path(path).open("rb") as handle:
            yield handle


def latest_time(path: str, now: int, future_tolerance: int, decode: Callable[[bytes], Touchpoint]) -> int | None:
    """The largest occurred_at of the touchpoints a replay accepts (for refusing an early --until up front)."""
    latest = None
    with open_input(path) as handle:
        for line in handle:
            try:
                tp = decode(line.rstrip(b"\n"))
                check_not_ahead(tp, now, future_tolerance)
            except (Invalid, Skipped):
                continue
            at = tp.at
            latest = at if latest is None or at > latest else latest
    return latest


def replay_file(
    funnels: Sequence[Funnel],
    path: str,
    input_format: str,
    mapping: str | None,
    until: int | None,
    dedup_horizon_us: int,
    now: int | None,
    future_tolerance: int,
) -> int:
    """The `replay` command: `path` ('-' for stdin) through the core, outputs on stdout, dead letters
    and the summary on stderr; the exit code. `now` None: the wall clock, read once."""
    limits = Limits(dedup_horizon_us=dedup_horizon_us)
    now = now if now is not None else time.time_ns() // 1000  # read once: every line arrives "now"
    if path != "-" and not Path(path).is_file():
        print(f"funnel-processor replay: no such input file: {path}", file=sys.stderr)
        return 2
    if mapping is not None and input_format == "touchpoint":
        print("funnel-processor replay: --mapping applies only to --input-format segment or snowplow", file=sys.stderr)
        return 2
    try:
        read = decoder(input_format, load_mapping(mapping))
    except MappingError as exc:
        print(f"funnel-processor replay: --mapping: {exc}", file=sys.stderr)
        return 2
    if until is not None and path != "-":
        latest = latest_time(path, now, future_tolerance, read)
        if latest is not None and until < latest:
            print(
                f"funnel-processor replay: --until {format_time(until)} is earlier than the input's "
                f"latest touchpoint ({format_time(latest)}); refused",
                file=sys.stderr,
            )
            return 2
    try:
        with open_input(path) as handle:
            stats = run_replay(
                handle, path, funnels, sys.stdout.buffer, sys.stderr.buffer, until, limits, now, future_tolerance, read
            )
    except UntilTooEarly as exc:
        sys.stdout.flush()
        print(f"funnel-processor replay: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()  # the dead letters first, then the summary after them
    print(f"funnel-processor replay: {stats.summary()}", file=sys.stderr)
    return 0
