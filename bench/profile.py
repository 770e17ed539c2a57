"""Where the worker's time per touchpoint goes: case 3 under py-spy, summed into parts.

    python -m bench.profile [--broker kafka|tansu] [--touchpoints N] [--rate HZ] [--raw FILE]
    python -m bench.profile --summarize FILE --cpu-us US     # an earlier recording, again

Starts a broker as `python -m bench` does, runs case 3 (the worker drains the pre-loaded
input: four presets, RocksDB), and attaches `py-spy record --format raw` to the worker
from its first output to its last, sampling without pausing it (--nonblocking). The
samples are grouped into parts by module path (bench/spy.py says which module counts
where) and printed as µs per touchpoint: each part's share of the samples times the
worker's CPU µs per touchpoint measured over the same span. py-spy's sampling costs
CPU on the machine's other core, so the worker's figures here run a little above a
plain case 3.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import spy, throughput
from bench.lab import FULL, Lab, simulate
from bench.procs import KAFKA, ROOT, TANSU, BenchError, Proc, Procs, start_broker
from bench.run import STORE
from bench.streams import delete_topics

DEFAULT_RATE_HZ = 250


def py_spy() -> str:
    """The py-spy of this environment (the dev extras install it), else one on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.is_file() else shutil.which("py-spy")
    if found is None:
        raise BenchError("py-spy is not installed: `make setup` installs the dev extras, which include it")
    return found


@dataclass
class Recorder:
    """py-spy attached to one process, writing raw stacks to `out` until stopped (SIGINT: it writes then)."""

    procs: Procs
    out: Path
    rate_hz: int
    proc: Proc | None = None

    def attach(self, target: Proc) -> Recorder:
        command = [py_spy(), "record", "--pid", str(target.pid), "--format", "raw", "--full-filenames"]
        command += ["--rate", str(self.rate_hz), "--nonblocking", "--output", str(self.out)]
        self.proc = self.procs.start("py-spy", command, dict(os.environ))
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc, signal.SIGINT)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", choices=(KAFKA, TANSU), help="as python -m bench --broker")
    parser.add_argument("--touchpoints", type=int, default=FULL.touchpoints, help="input size (default 30,000)")
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE_HZ, help="py-spy samples per second")
    parser.add_argument("--workdir", type=Path, help="logs and data, emptied first (default out/bench-profile)")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw stacks here (default: in the workdir)")
    parser.add_argument("--summarize", type=Path, metavar="FILE", help="summarize this raw recording; start nothing")
    parser.add_argument("--cpu-us", type=float, help="with --summarize: the CPU µs per touchpoint to divide up")
    return parser.parse_args(argv)


def summary(raw: Path, cpu_us: float | None, header: str) -> str:
    shares = spy.summarize(spy.parse_raw(raw.read_text().splitlines()), cpu_us)
    return spy.render(shares, header)


def record(args: argparse.Namespace) -> tuple[throughput.Drain, Path]:
    work = (args.workdir or ROOT / "out" / "bench-profile").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    raw = (args.raw or work / "worker.pyspy.txt").resolve()
    procs = Procs(work)
    lab: Lab | None = None
    broker = None
    try:
        broker = start_broker(procs, args.broker)
        sizes = dataclasses.replace(FULL, touchpoints=args.touchpoints)
        lab = Lab(broker, procs, work, sizes, simulate(work / "touchpoints.jsonl", sizes.touchpoints))
        recorder = Recorder(procs, raw, args.rate)
        drain = throughput.worker(lab, STORE, watch=recorder.attach).drain
    finally:
        procs.stop_all()
        if broker is not None and broker.local is not None:
            broker.local.stop()
        elif lab is not None and not lab.broker.is_tansu:
            asyncio.run(delete_topics(lab.broker.hosts, lab.prefix))
    if not raw.is_file():
        raise BenchError(f"py-spy wrote nothing to {raw}; see {work / 'py-spy.log'}")
    return drain, raw


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.summarize is not None:
        print(summary(args.summarize, args.cpu_us, f"{args.summarize}"))
        return 0
    drain, raw = record(args)
    header = (
        f"worker (case 3), {drain.touchpoints:,} touchpoints in {drain.span_s:.2f} s = {drain.rate:,.0f}/s; "
        f"{'-' if drain.cpu_us is None else f'{drain.cpu_us:,.0f}'} µs CPU per touchpoint; "
        f"py-spy at {args.rate} Hz; raw stacks in {raw}"
    )
    print(summary(raw, drain.cpu_us, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
