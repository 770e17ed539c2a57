"""Replay throughput against a bare orjson parse-and-dump loop on the same file.

    make bench                      # 200,000 touchpoints
    python bench/replay_bench.py --touchpoints 2000 --rounds 1   # smoke size

Both loops start from the same lines in memory and write to the same kind of sink.
Rounds alternate (bare, replay, bare, ...) and the best round of each counts, so a
busy machine slows both alike. Target: replay costs at most 2x the bare loop.
"""

from __future__ import annotations

import argparse
import gc
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from processor.definitions import PRESETS, load_funnels
from processor.replay import run_replay

DATA = Path(__file__).resolve().parent / "data"
TARGET_RATIO = 2.0


class Sink:
    """Counts bytes written; keeps nothing."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def make_input(touchpoints: int, seed: int) -> Path:
    path = DATA / f"touchpoints-{touchpoints}-{seed}.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
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
                "30",
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


def replay(lines: Sequence[bytes], funnels: Sequence[str]) -> Callable[[], None]:
    loaded = load_funnels(funnels)

    def run() -> None:
        run_replay(lines, "bench", loaded, Sink(), Sink())  # type: ignore[arg-type]

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--touchpoints", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lines = make_input(args.touchpoints, args.seed).read_bytes().splitlines(keepends=True)
    cases = {"b2b-sales": ["b2b-sales"], "all 4 presets": list(PRESETS)}
    runs = [lambda: bare(lines)] + [replay(lines, names) for names in cases.values()]
    times = best_of(args.rounds, *runs)
    n = len(lines)
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"best of {args.rounds} alternating rounds, {n:,} touchpoints"
    )
    print(f"{'loop':<26}{'events/s':>12}{'x bare':>9}  target <= {TARGET_RATIO:.1f}x")
    print(f"{'bare orjson loads+dumps':<26}{n / times[0]:>12,.0f}{1.0:>9.2f}")
    for (name, _), elapsed in zip(cases.items(), times[1:], strict=True):
        ratio = elapsed / times[0]
        verdict = "met" if ratio <= TARGET_RATIO else f"MISSED by {ratio / TARGET_RATIO - 1:.0%}"
        print(f"{'replay, ' + name:<26}{n / elapsed:>12,.0f}{ratio:>9.2f}  {verdict}")
    return 0  # figures, not a test: a miss is reported above, not fatal


if __name__ == "__main__":
    sys.exit(main())
