"""The benchmark harness still runs (tiny sizes; figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "replay_bench.py"


def test_replay_bench_runs_and_prints_every_row(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--touchpoints", "300", "--rounds", "1", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = result.stdout.splitlines()
    assert sum("bare orjson loads+dumps" in row for row in rows) == 2
    assert sum("replay, b2b-sales" in row for row in rows) == 2
    assert sum("replay, 4 presets" in row for row in rows) == 2
    assert len(list(tmp_path.glob("*.jsonl"))) == 2
