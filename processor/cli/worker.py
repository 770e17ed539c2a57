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

from processor.config.settings import Settings, SettingsError, documented
from processor.worker.webaccess import query_access


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
    notice = query_access(settings).notice
    if notice is not None:
        print(f"funnel-processor worker: {notice}", file=sys.stderr, flush=True)
    # Faust and the Kafka clients load only for this command, keeping the others quick.
    from processor.worker import bootstrap

    try:
        return bootstrap.run(settings, _say)
    except bootstrap.NotReady as exc:
        return _fail(str(exc))


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
