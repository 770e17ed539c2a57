"""The eight cases as table rows: each runs its measurement and states the issue's target beside it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import live, scaleout, state, throughput
from bench.lab import Lab
from bench.replay_bench import TARGET_RATIO, measure
from bench.table import Row, Target, failed

CEILING_SHARE = Target(">=", 0.5, ">= 0.5x the ceiling")
OVER_FAUST = Target(">=", 3.0, ">= 3x Faust")
CPU_OF_FAUST = Target("<=", 1 / 3, "<= 0.33x Faust's")
LATENCY_P99 = Target("<=", 100.0, "<= 100 ms")
LATENESS_P99 = Target("<=", 2.0, "<= 2 s")
MEMORY_BYTES = Target("<=", 1024.0, "<= 1 KiB")
RECOVERY = Target("<=", 60.0, "<= 60 s")
REPLAY = Target("<=", TARGET_RATIO, f"<= {TARGET_RATIO:g}x (issue 2)")


# Every row of the table: case -> (what, unit, target).
SLOTS: dict[str, tuple[str, str, Target | None]] = {
    "1": ("raw aiokafka passthrough (the ceiling)", "records/s", None),
    "2": ("plain Faust agent (the baseline)", "touchpoints/s", None),
    "3": ("this worker, end to end, one process", "touchpoints/s", None),
    "3u": ("  its CPU time per touchpoint", "µs", None),
    "3a": ("  worker / passthrough ceiling", "x", CEILING_SHARE),
    "3b": ("  worker / plain Faust baseline", "x", OVER_FAUST),
    "3c": ("  worker CPU per touchpoint / plain Faust's", "x", CPU_OF_FAUST),
    "3r": ("this worker, Segment events re-keyed by contact", "touchpoints/s", None),
    "3s": ("  re-keyed / direct (row 3)", "x", None),
    "4a": ("latency p50, touchpoint -> transition", "ms", None),
    "4b": ("latency p99, touchpoint -> transition", "ms", LATENCY_P99),
    "4c": ("  p99 through the raw passthrough (floor)", "ms", None),
    "5a": ("drop-off lateness p99, traffic flowing", "s", LATENESS_P99),
    "5b": ("drop-off lateness p99, quiet partition", "s", LATENESS_P99),
    "6a": ("memory store, bytes per contact (RSS)", "B", MEMORY_BYTES),
    "6b": ("RocksDB store, bytes per contact on disk", "B", None),
    "6c": ("recovery of N contacts, memory store", "s", RECOVERY),
    "6d": ("restart with N contacts, RocksDB store kept", "s", RECOVERY),
    "7": ("file replay, the core alone, 4 presets", "events/s", None),
    "7a": ("  replay time / bare orjson loop time", "x", REPLAY),
    "8a": ("one worker process, group settled, then the input", "touchpoints/s", None),
    "8b": ("two worker processes of one group, same input", "touchpoints/s", None),
    "8c": ("  two processes / one", "x", None),
}


def row(case: str, figure: float | None, note: str = "", details: dict[str, Any] | None = None, name: str = "") -> Row:
    what, unit, target = SLOTS[case]
    return Row(case, name or what, figure, unit, target, note, details or {})


@dataclass
class Results:
    """What later cases need from earlier ones."""

    rows: list[Row] = field(default_factory=list)
    ceiling: float | None = None
    faust: float | None = None
    faust_cpu_us: float | None = None
    worker: throughput.WorkerDrain | None = None

    def add(self, cases: list[str], body: Callable[[], list[Row]]) -> None:
        """The rows body() returns; if it raises, a failed row for each of `cases`, with the error."""
        try:
            self.rows.extend(body())
        except Exception as error:
            for case in cases:
                name, unit, target = SLOTS[case]
                self.rows.append(failed(case, name, unit, error, target))


def ceiling(lab: Lab, res: Results) -> list[Row]:
    drain = throughput.passthrough(lab)
    res.ceiling = drain.rate
    return [row("1", drain.rate, f"{drain.touchpoints:,} records in {drain.span_s:.2f} s", drain.details())]


def faust(lab: Lab, res: Results, store: str) -> list[Row]:
    drain = throughput.faust_baseline(lab, store)
    res.faust, res.faust_cpu_us = drain.rate, drain.cpu_us
    note = f"{drain.touchpoints:,} touchpoints in {drain.span_s:.2f} s, {store} table{_cpu(drain)}"
    return [row("2", drain.rate, note, drain.details())]


def worker(lab: Lab, res: Results, store: str) -> list[Row]:
    res.worker = throughput.worker(lab, store)
    drain = res.worker.drain
    note = f"{drain.touchpoints:,} touchpoints, {drain.outputs:,} outputs in {drain.span_s:.2f} s; 4 presets, {store}"
    return [row("3", drain.rate, note + _cpu(drain), drain.details()), *worker_ratios(drain, res)]


def worker_ratios(drain: throughput.Drain, res: Results) -> list[Row]:
    """Rows 3u, 3a, 3b, 3c: the worker's CPU per touchpoint, and the worker against the baselines in `res`."""
    rows = []
    if drain.cpu_us is None:
        rows.append(row("3u", None, "failed: the worker exited before its last output was read"))
    else:
        faust = "" if res.faust_cpu_us is None else f"; plain Faust's: {res.faust_cpu_us:,.0f} µs"
        rows.append(row("3u", drain.cpu_us, "from /proc, over the drain" + faust))
    for case, base in (("3a", res.ceiling), ("3b", res.faust)):
        if base is None:
            rows.append(row(case, None, "failed: its baseline did not run"))
        else:
            rows.append(row(case, drain.rate / base))
    if res.faust_cpu_us is None or drain.cpu_us is None:
        rows.append(row("3c", None, "failed: no CPU figure for the worker or the baseline"))
    else:
        note = "the worker's CPU time per touchpoint / Faust's: less moved by other load than the rates"
        rows.append(row("3c", drain.cpu_us / res.faust_cpu_us, note))
    return rows


def rekeyed(lab: Lab, res: Results, store: str) -> list[Row]:
    drain = throughput.rekeyed_worker(lab, store)
    events = drain.extra["segment_events"]
    note = f"{drain.touchpoints:,} touchpoints from {events:,} Segment events keyed by message id (1 partition)"
    rows = [
        row(
            "3r",
            drain.rate,
            note + f", {drain.outputs:,} outputs in {drain.span_s:.2f} s" + _cpu(drain),
            drain.details(),
        )
    ]
    if res.worker is None:
        rows.append(row("3s", None, "failed: case 3 did not run"))
    else:
        direct = res.worker.drain
        cpu = (
            ""
            if direct.cpu_us is None or drain.cpu_us is None
            else f"; by CPU per touchpoint {drain.cpu_us / direct.cpu_us:.2f}x the cost"
        )
        rows.append(row("3s", drain.rate / direct.rate, "each record crosses Kafka and Faust twice" + cpu))
    return rows


def _cpu(drain: throughput.Drain) -> str:
    return "" if drain.cpu_us is None else f"; {drain.cpu_us:,.0f} µs CPU per touchpoint"


def latency_and_lateness(lab: Lab, res: Results, store: str) -> list[Row]:
    if res.worker is None:
        raise RuntimeError("needs case 3's sustained rate")
    run = live.live(lab, res.worker.drain.rate, store)
    at = f"at {run.rate:,.0f} touchpoints/s (half of 3), {run.sent:,} sent; {len(run.latencies_ms):,} transitions"
    flowing_p50 = live.percentile(run.flowing_s, 50)
    flowing = f"{len(run.flowing_s):,} stalls (bench/funnels/stall-probe.json); p50 {flowing_p50:.2f} s"
    quiet = f"{len(run.quiet_s):,} stalls after traffic stopped, fired by the idle clock"
    floor = live.floor(lab, run.rate, run.sent)
    wait, floor_p50 = lab.fetch_wait_ms, live.percentile(floor, 50)
    floor_note = f"same rate and broker, consumer fetch wait {wait} ms as the worker's; p50 {floor_p50:.0f} ms"
    return [
        row("4a", live.percentile(run.latencies_ms, 50), at, run.details()),
        row("4b", live.percentile(run.latencies_ms, 99)),
        row("4c", live.percentile(floor, 99), floor_note),
        row("5a", live.percentile(run.flowing_s, 99), flowing),
        row("5b", live.percentile(run.quiet_s, 99), quiet),
    ]


def rocksdb_state(res: Results) -> list[Row]:
    if res.worker is None:
        raise RuntimeError("needs case 3's RocksDB tables")
    size, contacts, files = state.rocksdb_bytes(res.worker.data_dir)
    note = f"{size:,} bytes in {files} SST/WAL files over {contacts:,} contacts, left by case 3's worker"
    return [row("6b", size / contacts, note)]


def memory_state(lab: Lab) -> list[Row]:
    sample, clock = state.sample_states(lab.lines)
    empty, _ = state.recover(lab, sample, clock, 0)
    full, built = state.recover(lab, sample, clock, lab.sizes.recovery_contacts)
    n = full.contacts
    built.update({"rss_empty": empty.rss, "rss_full": full.rss, "peak_rss_full": full.peak_rss})
    built["sample_states"] = len(sample)
    built["entry_bytes_per_contact"] = round(state.raw_entry_bytes(sample, min(n, 100_000)))
    memory = f"worker RSS {full.rss / 2**20:,.0f} MiB with {n:,} contacts, {empty.rss / 2**20:,.0f} MiB with none;"
    memory += f" the entries alone {built['entry_bytes_per_contact']:,} B per contact"
    recovery = f"{n:,} contacts: worker start -> every partition answers a probe"
    if "changelog_read_after_s" in built and "timers_rebuilt_s" in built:
        read, rebuilt = built["changelog_read_after_s"], built["timers_rebuilt_s"]
        recovery += f" (changelog read by {read:g} s; timers rebuilt in {rebuilt:g} s)"
    if built.get("probes_left_out"):
        recovery += f"; probes Faust left out, (partition, offset): {built['probes_left_out']}"
    name = f"recovery of {n:,} contacts, memory store"
    return [row("6a", (full.rss - empty.rss) / n, memory, built), row("6c", full.seconds, recovery, name=name)]


def rocksdb_restart(lab: Lab) -> list[Row]:
    sample, clock = state.sample_states(lab.lines)
    run, built = state.restart(lab, sample, clock, lab.sizes.recovery_contacts)
    n = run.contacts
    note = f"{n:,} contacts: SIGTERM, then start on the same RocksDB data dir -> every partition answers a probe"
    restarted = built["restart"]
    if "timers_rebuilt_s" in restarted:
        note += f" (timers rebuilt in {restarted['timers_rebuilt_s']:g} s)"
    note += f"; the first start, reading the whole changelog, took {run.cold_s:.1f} s"
    return [row("6d", run.seconds, note, built, name=f"restart with {n:,} contacts, RocksDB store kept")]


def core(lab: Lab) -> list[Row]:
    bare, timings = measure(lab.lines, lab.sizes.replay_rounds)
    presets = timings[-1]
    details: dict[str, Any] = {
        t.name: {"events_per_s": round(t.events_per_s), "ratio": round(t.ratio, 2)} for t in timings
    }
    details["bare orjson loop events/s"] = round(bare)
    note = (
        f"best of {lab.sizes.replay_rounds}; bare loop {bare:,.0f}/s; b2b-sales alone {timings[0].events_per_s:,.0f}/s"
    )
    return [row("7", presets.events_per_s, note, details), row("7a", presets.ratio)]


def scale_out(lab: Lab, store: str) -> list[Row]:
    one = scaleout.run(lab, store, 1)
    two = scaleout.run(lab, store, 2)
    return scale_rows(one, two)


def scale_rows(one: scaleout.ScaleRun, two: scaleout.ScaleRun) -> list[Row]:
    """Rows 8a, 8b, 8c: one and two processes of one group, and the ratio of their rates."""
    rows = []
    for case, run in (("8a", one), ("8b", two)):
        d = run.drain
        owned = " and ".join(str(parts) for parts in run.owned)
        note = f"{d.touchpoints:,} touchpoints in {d.span_s:.2f} s; partitions {owned}{_cpu(d)}"
        rows.append(row(case, d.rate, note + (" (both processes)" if run.processes > 1 else ""), d.details()))
    ratio = two.drain.rate / one.drain.rate
    cpu = ""
    if one.drain.cpu_us is not None and two.drain.cpu_us is not None:
        cpu = f"; CPU per touchpoint {two.drain.cpu_us / one.drain.cpu_us:.2f}x one process's"
    rows.append(row("8c", ratio, f"on {_cores()} cores" + cpu))
    return rows


def _cores() -> int:
    return os.cpu_count() or 1
