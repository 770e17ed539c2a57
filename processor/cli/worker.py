"""`funnel-processor worker`: the Faust stream worker, configured from FUNNEL_* variables.

Before Faust starts, the settings are validated and printed (secrets masked), the
funnels are loaded, and the broker and topics are checked, so that a wrong value, an
unreachable broker, a certificate that does not verify, refused credentials or a
partition mismatch ends with one clear message and exit code 2, not a trace.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable

from processor.config.settings import Settings, SettingsError, documented

# Starts the worker with the settings and a way to say start-up notes; the exit code. Given by
# processor/main.py (the entry point), since the command line never imports the worker itself.
WorkerRunner = Callable[[Settings, Callable[[str], None]], int]


def _fail(message: str) -> int:
    print(f"funnel-processor worker: {message}", file=sys.stderr)
    return 2


def _say(line: str) -> None:
    print(f"funnel-processor worker: {line}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(str(exc))
    print("funnel-processor worker settings:\n" + settings.describe(), file=sys.stderr, flush=True)
    run_worker: WorkerRunner | None = getattr(args, "run_worker", None)
    if run_worker is None:
        return _fail(
            "this entry point cannot start the worker; run `funnel-processor worker` or `python -m processor worker`"
        )
    return run_worker(settings, _say)


def settings_help(width: int = 79) -> str:
    """Every setting with its default and meaning, from the table the settings are validated with."""
    lines = ["settings (FUNNEL_* environment variables; an empty one counts as unset):"]
    for var, default, meaning in documented():
        lines.append(f"  {var} = {default}")
        lines += textwrap.wrap(
            meaning, width, initial_indent=" " * 6, subsequent_indent=" " * 6, break_on_hyphens=False
        )
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    description = (
        "Consume touchpoints from Kafka, keep every contact's journey in Faust tables, and emit transitions, "
        "drop-offs and dead letters. Configured from FUNNEL_* environment variables, checked before anything "
        "starts; the settings are printed (secrets masked) at start."
    )
    parser = sub.add_parser(
        "worker",
        help="run the stream worker (configured from FUNNEL_* environment variables)",
        description="\n".join(textwrap.wrap(description, 79)),
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=_run)
