"""The README's first command (`make demo`): simulate traffic, replay it, show the funnels.

Everything runs locally on files under ./out/: one day of simulated touchpoints for
every preset, replayed through the funnel core, then the funnel report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OUT = Path("out")
CONTACTS = "5000"


def step(title: str, *args: str, stdout: Path | None = None) -> None:
    print(f"\n== {title}\n$ funnel-processor {' '.join(args)}" + (f" > {stdout}" if stdout else ""), flush=True)
    command = [sys.executable, "-m", "processor", *args]
    if stdout is None:
        subprocess.run(command, check=True)
    else:
        with stdout.open("wb") as handle:
            subprocess.run(command, check=True, stdout=handle)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    touchpoints, outputs = OUT / "touchpoints.jsonl", OUT / "outputs.jsonl"
    presets = ["b2b-sales", "aida", "customer-journey", "quote-to-deal"]
    funnels = [arg for name in presets for arg in ("--funnel", name)]
    step(
        "Simulate one day of new contacts",
        "simulate",
        *funnels,
        "--contacts",
        CONTACTS,
        "--days",
        "1",
        "--seed",
        "2026",
        "--output",
        str(touchpoints),
    )
    step("Replay them through every funnel", "replay", *funnels, "--input", str(touchpoints), stdout=outputs)
    step("The funnels", "report", *funnels, "--input", str(outputs))
    print(f"\nFiles: {touchpoints} (input), {outputs} (transitions and drop-offs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
