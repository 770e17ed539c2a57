"""The `funnel-processor` command: one sub-command per module.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`run=callable(args) -> int` (the exit code) as a default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from processor import replay, report, simulate, topics, worker
from processor.funnel.definition import DefinitionError

COMMANDS = (replay, report, simulate, topics, worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="funnel-processor",
        description="Real-time funnel processor: stage transitions, drop-offs and conversion figures.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except DefinitionError as exc:
        print(f"funnel-processor: funnel definition refused: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
