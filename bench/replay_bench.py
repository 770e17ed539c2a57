"""Replay throughput against a bare orjson parse-and-dump loop on the same file.

    python bench/replay_bench.py                                  # 200,000 touchpoints, two mixes
    python bench/replay_bench.py --touchpoints 2000 --rounds 1   # smoke size

`make bench` runs `measure()` from here as case 7 of the whole harness (bench/run.py),
on that harness's input.

Both loops start from the same lines in memory and write to the same kind of sink.
Rounds alternate (bare, replay, bare, ...) and the best round of each counts, so a
busy machine slows both alike. Target: replay costs at most 2x the bare loop.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from processor.config.definitions import PRESETS, load_funnels
from processor.tools.replay import run_replay

DATA = Path(__file__).resolve().parent / "data"
TARGET_RATIO = 2.0


class Sink:
    """Counts bytes written; keeps nothing."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


# Traffic mixes: simulate's default (many touchpoints move someone) and a
# browsing-heavy one (most touchpoints are page views that move nobody).
MIXES = {"default mix": "0.3", "browsing-heavy": "0.9"}


def make_input(touchpoints: int, seed: int, noise: str, data: Path) -> Path:
    path = data / f"touchpoints-{touchpoints}-{seed}-noise{noise}.jsonl"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        funnels = [a for name in PRESETS for a in ("--funnel", name)]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "processor",
                "simulate",
                *funnels,
                "--touchpoints",
                str(touchpoints),
                "--seed",
                str(seed),
                "--days",
                "365",
                "--noise-rate",
                noise,
                "--output",
                str(path),
            ],
            check=True,
        )
    return path


def bare(lines: Sequence[bytes]) -> None:
    sink, loads, dumps = Sink(), orjson.loads, orjson.dumps
    for line in lines:
        sink.write(dumps(loads(line)) + b"\n")


def replay(lines: Sequence[bytes], funnels: Sequence[str], outputs: list[int]) -> Callable[[], None]:
    loaded = load_funnels(funnels)

    def run() -> None:
        stats = run_replay(lines, "bench", loaded, Sink(), Sink())  # type: ignore[arg-type]
        outputs[:] = [stats.outputs]

    return run


def best_of(rounds: int, *runs: Callable[[], None]) -> list[float]:
    best = [float("inf")] * len(runs)
    for _ in range(rounds):
        for i, run in enumerate(runs):
            gc.collect()
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


CASES = {"replay, b2b-sales": ["b2b-sales"], "replay, 4 presets": list(PRESETS)}


@dataclass(frozen=True)
class Timing:
    name: str
    events_per_s: float
    ratio: float  # time against the bare loop's on the same lines
    outputs_per_touchpoint: float


def measure(lines: Sequence[bytes], rounds: int) -> tuple[float, list[Timing]]:
    """(bare loop events/s, a Timing per replay case), best of `rounds` alternating rounds."""
    counts: list[list[int]] = [[] for _ in CASES]
    runs = [functools.partial(bare, lines)] + [
        replay(lines, names, c) for names, c in zip(CASES.values(), counts, strict=True)
    ]
    times = best_of(rounds, *runs)
    n = len(lines)
    timings = [
        Timing(name, n / elapsed, elapsed / times[0], count[0] / n)
        for name, elapsed, count in zip(CASES, times[1:], counts, strict=True)
    ]
    return n / times[0], timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--touchpoints", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=DATA, help="where generated inputs are kept")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}; best of {args.rounds} alternating rounds, {args.touchpoints:,} touchpoints"
    )
    print(f"{'mix':<16}{'loop':<24}{'events/s':>11}{'x bare':>8}{'outputs/tp':>12}  target <= {TARGET_RATIO:.1f}x")
    for mix, noise in MIXES.items():
        lines = make_input(args.touchpoints, args.seed, noise, args.data_dir).read_bytes().splitlines(keepends=True)
        bare_rate, timings = measure(lines, args.rounds)
        print(f"{mix:<16}{'bare orjson loads+dumps':<24}{bare_rate:>11,.0f}{1.0:>8.2f}{'':>12}")
        for t in timings:
            verdict = "met" if t.ratio <= TARGET_RATIO else f"missed: {t.ratio / TARGET_RATIO:.1f}x over"
            figures = f"{t.events_per_s:>11,.0f}{t.ratio:>8.2f}{t.outputs_per_touchpoint:>12.2f}"
            print(f"{'':<16}{t.name:<24}{figures}  {verdict}")
    return 0  # figures, not a test: a miss is reported above, not fatal


if __name__ == "__main__":
    sys.exit(main())
