"""The `funnel-processor` command: one sub-command per module.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`run=callable(args) -> int` (the exit code) as a default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from processor.cli import replay, report, simulate, topics, worker
from processor.cli.args import UsageError
from processor.cli.worker import WorkerRunner
from processor.funnel.definition import DefinitionError

COMMANDS = (replay, report, simulate, topics, worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="funnel-processor",
        description="Real-time funnel processor: stage transitions, drop-offs and conversion figures. "
        "Run 'funnel-processor COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def version() -> str:
    """The installed package's version (pyproject.toml)."""
    try:
        return metadata.version("funnel-processor")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def main(argv: Sequence[str] | None = None, *, run_worker: WorkerRunner | None = None) -> int:
    """Run one command; the exit code. `run_worker` starts the stream worker (processor/main.py
    gives it: the command line never imports the worker)."""
    args = build_parser().parse_args(argv)
    args.run_worker = run_worker
    try:
        code: int = args.run(args)
    except DefinitionError as exc:
        print(f"funnel-processor: funnel definition refused: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"funnel-processor {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
