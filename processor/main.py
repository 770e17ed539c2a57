"""The `funnel-processor` entry point: the command line, given the stream worker to start.

The command line (processor/cli/) parses and checks; the worker (processor/worker/) is
wired and started by `processor.worker.bootstrap`. Only this module knows both, so the
command line never imports the worker (tests/unit/test_layers.py holds it to that).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from processor.cli import main as command_line
from processor.config.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    return command_line(argv, run_worker=run_worker)


def run_worker(settings: Settings, say: Callable[[str], None]) -> int:
    """Start the worker; exit code 2 with one line when a check before Faust starts fails."""
    from processor.worker import bootstrap  # Faust and the Kafka clients load only for this command

    try:
        return bootstrap.run(settings, say)
    except bootstrap.NotReady as exc:
        say(str(exc))
        return 2
