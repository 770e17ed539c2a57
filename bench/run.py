"""The benchmark harness: every case in one run, one table (`make bench`, or `make bench-smoke`).

    python -m bench [--smoke] [--broker kafka|tansu] [--out out/bench.json] [--workdir out/bench]

Starts a broker on loopback (stopped by PID at the end): the local Apache Kafka where
Java can run it, else Tansu; --broker chooses; FUNNEL_TEST_BROKER names a Kafka to use
instead. Then simulates the input, runs the eight cases, prints the table and writes it
as JSON. Targets are ratios within the run where the issue sets them, because this
machine's absolute speed drifts. A missed target is a figure, not an error: the exit
code is 1 only when a case could not be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shlex
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import cases
from bench.lab import FULL, SMOKE, Lab, simulate
from bench.procs import KAFKA, ROOT, TANSU, Broker, Procs, start_broker
from bench.streams import delete_topics
from bench.table import Row, machine, render, write_json

GROUPS = ("1", "2", "3", "4", "6", "7", "8")  # 4 also gives 5; 6 is the state cases (6b needs 3); 8 scale-out
STORE = "rocksdb"  # the worker's default store: cases 2, 3 and 4-5 use it; recovery uses memory


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness runs, figures mean little")
    parser.add_argument(
        "--broker",
        choices=(KAFKA, TANSU),
        help="the broker to start: the local Apache Kafka (default where Java can run it) or Tansu; "
        "FUNNEL_TEST_BROKER names a Kafka to use instead",
    )
    parser.add_argument(
        "--out", type=Path, help="the table as JSON (default out/bench.json, smoke out/bench-smoke.json)"
    )
    parser.add_argument("--workdir", type=Path, help="logs and data of this run, emptied first (default out/bench)")
    parser.add_argument("--touchpoints", type=int, help="input size (default 30,000; smoke 600)")
    parser.add_argument("--recovery-contacts", type=int, help="contacts in case 6 (default 1,000,000; smoke 3,000)")
    parser.add_argument(
        "--cases",
        type=lambda text: {part.strip() for part in text.split(",") if part.strip()},
        help="run only these groups, e.g. 1,3 (groups: " + ", ".join(GROUPS) + "); ratios need their baselines",
    )
    return parser.parse_args(argv)


def run_cases(lab: Lab, only: set[str] | None = None) -> list[Row]:
    res = cases.Results()

    def wanted(group: str) -> bool:
        return only is None or group in only

    if wanted("1"):
        res.add(["1"], lambda: cases.ceiling(lab, res))
    if wanted("2"):
        res.add(["2"], lambda: cases.faust(lab, res, STORE))
    if wanted("3"):
        res.add(["3", "3u", "3a", "3b", "3c"], lambda: cases.worker(lab, res, STORE))
        res.add(["3r", "3s"], lambda: cases.rekeyed(lab, res, STORE))
    if wanted("4"):
        res.add(["4a", "4b", "4c", "5a", "5b"], lambda: cases.latency_and_lateness(lab, res, STORE))
    if wanted("6"):
        if wanted("3"):
            res.add(["6b"], lambda: cases.rocksdb_state(res))
        if res.worker is not None:
            shutil.rmtree(res.worker.data_dir, ignore_errors=True)
        res.add(["6a", "6c"], lambda: cases.memory_state(lab))
        res.add(["6d"], lambda: cases.rocksdb_restart(lab))
    if wanted("7"):
        res.add(["7", "7a"], lambda: cases.core(lab))
    if wanted("8"):
        res.add(["8a", "8b", "8c"], lambda: cases.scale_out(lab, STORE))
    return sorted(res.rows, key=lambda row: list(cases.SLOTS).index(row.case))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.cases and not args.cases <= set(GROUPS):
        print(f"python -m bench: --cases takes groups among {', '.join(GROUPS)}", file=sys.stderr)
        return 2
    sizes = SMOKE if args.smoke else FULL
    if args.touchpoints:
        sizes = dataclasses.replace(sizes, touchpoints=args.touchpoints)
    if args.recovery_contacts:
        sizes = dataclasses.replace(sizes, recovery_contacts=args.recovery_contacts)
    work = (args.workdir or ROOT / "out" / "bench").resolve()
    out = (args.out or ROOT / "out" / ("bench-smoke.json" if args.smoke else "bench.json")).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started, started_at = time.monotonic(), datetime.now(UTC)
    procs = Procs(work)
    header: dict[str, object] = {"command": shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]])}
    lab: Lab | None = None
    broker: Broker | None = None
    try:
        broker = start_broker(procs, args.broker)
        header.update(machine(broker.description))
        lab = Lab(broker, procs, work, sizes, simulate(work / "touchpoints.jsonl", sizes.touchpoints))
        rows = run_cases(lab, args.cases)
    finally:
        procs.stop_all()
        if broker is not None and broker.local is not None:
            broker.local.stop()  # by its PID; its data goes with the run's folder
        elif lab is not None and not lab.broker.is_tansu:  # leave nothing on a shared Kafka
            asyncio.run(delete_topics(lab.broker.hosts, lab.prefix))
    header.update(
        {
            "started": started_at.isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - started),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "sizes": dataclasses.asdict(sizes),
            "cases": sorted(args.cases) if args.cases else "all",
            "json": str(out),
        }
    )
    print(render(rows, header))
    write_json(out, rows, header)
    return 1 if any(row.figure is None for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
