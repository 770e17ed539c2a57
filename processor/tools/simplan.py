"""What the simulator is asked for: per-stage plans of each funnel, and the run's settings. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from processor.funnel.definition import Funnel

SECOND_US = 1_000_000
DAY_US = 86_400 * SECOND_US
DEFAULT_CONVERSION = 0.5
DEFAULT_DELAY_US = 2 * DAY_US
STALL_SHARE = 0.4  # default mean delay: this share of the stage's stall_after


@dataclass(frozen=True, slots=True)
class FunnelPlan:
    funnel: Funnel
    conversion: tuple[float, ...]  # per stage: probability of moving on (0 for the last)
    mean_delay_us: tuple[int, ...]  # per stage: mean time before moving on (or going quiet)


def plan_for(funnel: Funnel, conversion: Mapping[str, float], delay: Mapping[str, int]) -> FunnelPlan:
    """Defaults for every stage, overridden by stage name; ValueError names a bad one."""
    last = funnel.stages[-1]
    for name in (*conversion, *delay):
        if name not in funnel.stages:
            raise ValueError(f"funnel {funnel.name!r} has no stage {name!r}")
    if last in conversion:
        raise ValueError(f"stage {last!r} is the last of funnel {funnel.name!r}: there is nothing to convert to")
    for name, p in conversion.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"conversion for {name!r} must be between 0 and 1, got {p}")
    probs = tuple(0.0 if s == last else conversion.get(s, DEFAULT_CONVERSION) for s in funnel.stages)
    stalls = zip(funnel.stages, funnel.stall_after, strict=True)
    means = tuple(delay.get(s, _default_delay(stall)) for s, stall in stalls)
    return FunnelPlan(funnel, probs, means)


def _default_delay(stall: int | None) -> int:
    return DEFAULT_DELAY_US if stall is None else max(SECOND_US, round(stall * STALL_SHARE))


@dataclass(frozen=True, slots=True)
class Config:
    seed: int
    contacts: int | None = None  # exactly this many contacts, or
    touchpoints: int | None = None  # contacts until at least this many, cut to exactly this many
    days: float = 1.0  # contacts enter the funnel within this many days of the start
    lost_rate: float = 0.3  # a contact that does not move on sends a lost touchpoint
    duplicate_rate: float = 0.02  # a touchpoint is sent twice
    noise_rate: float = 0.3  # chance of each further extra touchpoint in a stage visit
    skip_rate: float = 0.05  # a contact that moves on skips a stage
    contact_prefix: str = "c-"  # contact ids are this + a six-digit number
    # Channel -> factor on every stage's conversion probability (capped at 1) for contacts whose first
    # touchpoint came through that channel; other channels convert at the stage's own probability.
    channel_conversion: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


# One entry per line: (occurred_at µs, generation order, body, is a re-send).
