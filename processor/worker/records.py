"""What the worker reads off a Kafka record, whichever way it came: a Faust message (the
Faust stream: ticks, the re-keyer's source) or an aiokafka `ConsumerRecord` (the journeys
agent's partition lists, processor/worker/patches/partitionbatches.py, and the records a
gap read fetches, processor/worker/patches/skippedrecords.py). Faust gives a timestamp in
seconds (float), aiokafka in milliseconds (int)."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord

_US = 1_000_000

__all__ = ["arrival_us", "timestamp_ms"]


def timestamp_ms(message: Any) -> int | None:
    """A record's Kafka timestamp in ms (faust gives seconds, aiokafka's ConsumerRecord ms); None if it has none."""
    stamp = message.timestamp
    if stamp is None or stamp < 0:
        return None
    return int(stamp) if isinstance(message, ConsumerRecord) else round(stamp * 1000)


def arrival_us(message: Any, wall_s: float) -> int:
    """When a record arrived, for the bound on the future: its Kafka timestamp, never later
    than this worker's wall clock (µs).

    The timestamp is the producer's send time (CreateTime), or the broker's append time on a
    LogAppendTime topic. It is the same on every delivery, so a record delivered again after
    a crash gets the same verdict, unless its timestamp was itself ahead of the wall clock at
    the first delivery (a producer clock running fast, or a producer stamping records with
    their event time): then the wall clock decided, and a later delivery may accept it.
    A record without a timestamp arrives at the wall clock.
    """
    wall = int(wall_s * _US)
    ms = timestamp_ms(message)
    return wall if ms is None else min(ms * 1000, wall)
