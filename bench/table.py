"""The harness's result: rows with a figure and, where the issue sets one, a target; printed and as JSON."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True)
class Target:
    op: str  # ">=" or "<="
    limit: float
    text: str  # how the table shows it, e.g. ">= 0.5x the ceiling"

    def met(self, figure: float) -> bool:
        return figure >= self.limit if self.op == ">=" else figure <= self.limit


@dataclass
class Row:
    case: str  # "1", "3a", ...
    name: str
    figure: float | None  # None: the case failed (see note)
    unit: str  # "touchpoints/s", "ms", "s", "B", "x"
    target: Target | None = None
    note: str = ""  # sizes, how it was measured, or why it failed
    details: dict[str, Any] = field(default_factory=dict)

    def verdict(self) -> str:
        if self.figure is None:
            return "FAILED"
        if self.target is None:
            return ""
        if self.target.met(self.figure):
            return "met"
        if self.target.op == ">=":
            short = self.target.limit / self.figure if self.figure > 0 else math.inf
            return f"MISSED: {_times(short)}x short"
        times = self.figure / self.target.limit
        if self.unit == "x":
            return f"MISSED: {_times(times)}x over"
        over = self.figure - self.target.limit
        return f"MISSED by {fmt(over, self.unit)} {self.unit} ({_times(times)}x the limit)"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict()
        data["met"] = None if self.target is None or self.figure is None else self.target.met(self.figure)
        return data


def _times(factor: float) -> str:
    """How many times off a target: two decimals near 1 (a miss of 5% is not "1.0x")."""
    return f"{factor:,.2f}" if factor < 1.1 else f"{factor:,.1f}"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:,.2f}"
    if unit in ("ms", "s"):
        return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    return f"{value:,.0f}"


def failed(case: str, name: str, unit: str, error: BaseException, target: Target | None = None) -> Row:
    return Row(case, name, None, unit, target, note=f"failed: {type(error).__name__}: {error}")


def machine(broker: str) -> dict[str, Any]:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "broker": broker,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def render(rows: list[Row], header: dict[str, Any]) -> str:
    lines = [f"{key}: {value}" for key, value in header.items()]
    widths = (5, 46, 14, 14, 24)
    titles = ("case", "what", "figure", "unit", "target")
    lines.append("")
    lines.append("".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)) + "result")
    lines.append("-" * (sum(widths) + 30))
    for row in rows:
        target = row.target.text if row.target else ""
        cells = (row.case, row.name, fmt(row.figure, row.unit).rjust(12) + "  ", row.unit, target)
        lines.append("".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + row.verdict())
        if row.note:
            lines.append(" " * widths[0] + "  " + row.note)
    return "\n".join(lines)


def write_json(path: Path, rows: list[Row], header: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**header, "rows": [row.as_json() for row in rows]}
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
