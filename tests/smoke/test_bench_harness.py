"""The whole benchmark harness still runs end to end (`python -m bench --smoke`: tiny sizes).

It starts its own broker on loopback and stops it by PID: the local Apache Kafka, as
`make bench` does by default (or the Kafka FUNNEL_TEST_BROKER names, like the
integration tier). Where Java cannot run Kafka it runs on Tansu instead, naming why;
under CI that fails. Figures at these sizes mean nothing, so none is compared with a
target here; what is checked is that every row of the table was measured.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from localbrokers.kafkajars import unavailable

ROOT = Path(__file__).resolve().parents[2]
CASES = [
    *("1", "2", "3", "3u", "3a", "3b", "3c", "3r", "3s", "4a", "4b", "4c", "5a", "5b"),
    *("6a", "6b", "6c", "6d", "7", "7a", "8a", "8b", "8c"),
]
TIMEOUT_S = 300.0  # about 90 s on the project's 2-core machine


def test_bench_smoke_measures_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_") or k.startswith("FUNNEL_TEST_")}
    external = env.get("FUNNEL_TEST_BROKER", "").strip()
    no_kafka = None if external else unavailable()
    if no_kafka is not None and os.environ.get("CI"):
        pytest.fail(f"no local Apache Kafka for the benchmark: {no_kafka} (CI must run it: install Java 17+ and Maven)")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--workdir", str(tmp_path / "work")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    table = orjson.loads(out.read_bytes())
    rows = {row["case"]: row for row in table["rows"]}
    assert list(rows) == CASES
    for case, row in rows.items():
        assert isinstance(row["figure"], int | float) and math.isfinite(row["figure"]), (case, row)
        assert row["verdict"] != "FAILED", row
        assert (row["met"] is None) == (row["target"] is None), row
        assert row["name"] in result.stdout, f"row {case} is not in the printed table"
    for key in ("cpu", "cores", "python", "broker", "command", "duration_s"):
        assert table[key], key
    if external:
        assert "FUNNEL_TEST_BROKER" in table["broker"]
    elif no_kafka is None:
        assert table["broker"].startswith("Apache Kafka"), table["broker"]
    else:
        assert "tansu" in table["broker"].lower() and no_kafka in result.stdout
