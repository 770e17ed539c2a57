"""Where the worker's time per touchpoint goes: py-spy samples grouped into parts.

`py-spy record --format raw --full-filenames` writes one line per distinct stack,
root first: `func (path:line);func (path:line);... count`. Each sample is given to one
part by walking its stack from the leaf (the frame running) towards the root and taking
the first frame a rule below claims, so a frame of the funnel core called from the
agent counts as the core, and Faust's stream iteration calling the agent's code does not
hide it. Frames no rule claims (asyncio, the standard library, start-up wrappers) are
passed over; a sample with none left counts as "other" (the event loop itself), or
as Faust delivery when it runs in Faust's consumer thread (a `mode` ServiceThread, where
aiokafka fetches). A sample whose running frame is the selector's `select` is the process
waiting in epoll: py-spy's --nonblocking mode cannot always tell such a thread is idle,
so these are counted apart ("waiting") and left out of the shares.

The rules match module paths (and, for a few Faust and aiokafka modules that do both
delivery and commits, function names). A part's µs per touchpoint is its share of the
samples times the worker's CPU µs per touchpoint measured over the same span
(`/proc`), so the parts add up to that figure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

DELIVERY = "Faust delivery"
KAFKA_IO = "Kafka client I/O"
DECODE = "decode and checks"
CORE = "engine (funnel core)"
STATE = "state store"
OUTPUTS = "outputs (outbox)"
ACKS = "acks and commit"
METRICS = "metrics"
GLUE = "worker glue"
OTHER = "other"
PARTS = (DELIVERY, KAFKA_IO, DECODE, CORE, STATE, OUTPUTS, ACKS, METRICS, GLUE, OTHER)
WAITING = "waiting"  # in epoll: not CPU time, not one of PARTS

WHAT = {
    DELIVERY: "faust (consumer and its thread, conductor, channels, streams, agents), the worker's patches",
    KAFKA_IO: "aiokafka connections and wire protocol, both directions (fetch and produce responses)",
    DECODE: "bytes -> Touchpoint: processor/funnel touchpoint, formats, eventmap, time parsing",
    CORE: "processor/funnel: engine, journey, rulebook, outputs, time formatting",
    STATE: "processor/worker/state, the state codec, faust tables and stores, rocksdict",
    OUTPUTS: "processor/worker/outbox, aiokafka's producer and record batch builder",
    ACKS: "processor/worker/checkpoint and transactions, Faust's acks and offset commits",
    METRICS: "processor/worker metrics, breakdownmetrics, sensor; faust sensors; prometheus_client",
    GLUE: "the rest of processor/worker: the agent's per-record steps, batch, tasks",
    OTHER: "no rule claims a frame: the asyncio event loop itself (callbacks, futures, waits), no Python frame",
}


class Frame(NamedTuple):
    func: str
    path: str
    line: int


class Rule(NamedTuple):
    part: str | None  # None: a frame that decides nothing; look further towards the root
    path: str  # a fragment of the module path, "/"-separated
    funcs: tuple[str, ...] = ()  # if given, the frame's function name must contain one of these


# First match wins, for each frame; the order puts the specific before the general.
RULES: tuple[Rule, ...] = (
    # Used on several paths: let the caller decide.
    Rule(None, "processor/worker/outbox.py", ("default_partition",)),
    Rule(None, "/aiokafka/partitioner.py"),
    Rule(None, "processor/funnel/timefmt.py", ("_day",)),
    Rule(None, "processor/funnel/outputs.py", ("last_touch_type",)),  # the breakdown metrics' helper
    # Metrics
    Rule(METRICS, "/prometheus_client/"),
    Rule(METRICS, "/faust/sensors/"),
    Rule(METRICS, "processor/worker/metrics.py"),
    Rule(METRICS, "processor/worker/breakdownmetrics.py"),
    Rule(METRICS, "processor/worker/sensor.py"),
    # Acks and commits
    Rule(ACKS, "processor/worker/checkpoint.py"),
    Rule(ACKS, "processor/worker/transactions.py"),
    Rule(ACKS, "/faust/events.py", ("ack",)),
    Rule(ACKS, "/faust/streams.py", ("ack",)),
    Rule(ACKS, "/faust/transport/consumer.py", ("commit", "ack")),
    Rule(ACKS, "/faust/transport/drivers/aiokafka.py", ("commit",)),
    Rule(ACKS, "/aiokafka/consumer/group_coordinator.py", ("commit",)),
    # Outputs
    Rule(OUTPUTS, "processor/worker/outbox.py"),
    Rule(OUTPUTS, "/aiokafka/producer/"),
    Rule(OUTPUTS, "/aiokafka/record/", ("Builder", "append", "build")),
    Rule(OUTPUTS, "/faust/transport/producer.py"),
    # State
    Rule(STATE, "processor/worker/state/"),
    Rule(STATE, "processor/funnel/codec.py"),
    Rule(STATE, "/faust/stores/"),
    Rule(STATE, "/faust/tables/"),
    Rule(STATE, "rocksdict"),
    # Decode and the core
    Rule(DECODE, "processor/funnel/touchpoint.py"),
    Rule(DECODE, "processor/funnel/formats.py"),
    Rule(DECODE, "processor/funnel/eventmap.py"),
    Rule(DECODE, "processor/funnel/timefmt.py", ("parse",)),
    Rule(CORE, "processor/funnel/"),
    # Delivery: the worker's Faust patches (the records' path into the agent), then Faust itself
    Rule(DELIVERY, "processor/worker/patches/"),
    Rule(GLUE, "processor/worker/"),
    Rule(None, "/faust/cli/"),
    Rule(None, "/faust/worker.py"),
    Rule(DELIVERY, "/faust/"),
    Rule(DELIVERY, "/mode/utils/queues.py"),
    Rule(DELIVERY, "/mode/services.py", ("wait_first",)),
    Rule(KAFKA_IO, "/aiokafka/conn.py"),
    Rule(KAFKA_IO, "/aiokafka/protocol/"),
    Rule(KAFKA_IO, "/aiokafka/client.py"),
    Rule(KAFKA_IO, "/kafka/protocol/"),
    Rule(DELIVERY, "/aiokafka/"),
)

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>.*):(?P<line>\d+)\)$")


def parse_frame(text: str) -> Frame:
    """`func (path:line)`; a frame without a location (py-spy's thread or process markers) has path ''."""
    match = _FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip(), "", 0)
    return Frame(match["func"], match["path"].replace("\\", "/"), int(match["line"]))


def parse_raw(lines: Iterable[str]) -> list[tuple[tuple[Frame, ...], int]]:
    """py-spy's raw (collapsed) output -> (stack root first, samples)."""
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, space, count = line.rpartition(" ")
        if not space or not count.isdigit():
            raise ValueError(f"not a py-spy raw line: {line[:200]!r}")
        # An empty stack: the interpreter was running no Python frame (start-up, shutdown).
        frames = tuple(parse_frame(f) for f in stack.strip().split(";")) if stack.strip() else ()
        stacks.append((frames, int(count)))
    return stacks


def part_of_frame(frame: Frame) -> str | None:
    """The part a frame claims, None when it claims none (look further up)."""
    for rule in RULES:
        if rule.path in frame.path and (not rule.funcs or any(f in frame.func for f in rule.funcs)):
            return rule.part
    return None


def part_of(stack: Sequence[Frame]) -> str:
    """The part one sample counts under: the first frame from the leaf that claims one (or WAITING)."""
    if stack and stack[-1].func.endswith("select") and "selectors.py" in stack[-1].path:
        return WAITING
    for frame in reversed(stack):
        part = part_of_frame(frame)
        if part is not None:
            return part
    if any("/mode/threads.py" in frame.path for frame in stack):
        return DELIVERY  # Faust's consumer thread, outside any claimed frame: its own event loop
    return OTHER


@dataclass(frozen=True)
class Share:
    part: str
    samples: int
    share: float  # of all samples
    us_per_touchpoint: float | None  # share x the measured CPU µs per touchpoint


def summarize(stacks: Iterable[tuple[Sequence[Frame], int]], cpu_us: float | None) -> list[Share]:
    """Samples per part, in PARTS order, with µs per touchpoint when `cpu_us` (per touchpoint) is known;
    then the samples waiting in epoll, outside the shares."""
    counts: Counter[str] = Counter()
    for stack, n in stacks:
        counts[part_of(stack)] += n
    total = sum(n for part, n in counts.items() if part != WAITING)
    if total == 0:
        raise ValueError("no samples: py-spy recorded nothing (was the process busy?)")
    shares = [
        Share(part, counts[part], counts[part] / total, None if cpu_us is None else counts[part] / total * cpu_us)
        for part in PARTS
    ]
    return [*shares, Share(WAITING, counts[WAITING], 0.0, None)]


def render(shares: Sequence[Share], header: str = "") -> str:
    lines = [header] if header else []
    lines.append(f"{'part':<24}{'samples':>9}{'share':>8}{'µs/touchpoint':>15}  what")
    counted = [s for s in shares if s.part != WAITING]
    for s in counted:
        us = "-" if s.us_per_touchpoint is None else f"{s.us_per_touchpoint:,.1f}"
        lines.append(f"{s.part:<24}{s.samples:>9,}{s.share:>8.1%}{us:>15}  {WHAT[s.part]}")
    total_us = sum(s.us_per_touchpoint or 0.0 for s in counted)
    samples = sum(s.samples for s in counted)
    lines.append(f"{'total':<24}{samples:>9,}{1:>8.0%}{total_us:>15,.1f}")
    waiting = sum(s.samples for s in shares if s.part == WAITING)
    lines.append(f"(and {waiting:,} samples waiting in epoll, left out: not CPU time)")
    return "\n".join(lines)
