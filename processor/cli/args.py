"""Command-line options shared by several commands."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from processor.config import values as settingvalues
from processor.config.definitions import PRESETS, load_funnels
from processor.funnel.definition import Funnel
from processor.funnel.timefmt import parse_duration, parse_time


class UsageError(ValueError):
    """Options that cannot work together; the command exits 2 with the message."""


class _FunnelSpec(argparse.Action):
    """--funnel NAME and --funnel-file PATH append to one list, keeping their order."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: str | None = None
    ) -> None:
        specs = list(getattr(namespace, "funnel_specs", None) or [])
        specs.append(values if option == "--funnel" else _as_path(values))
        namespace.funnel_specs = specs


def _as_path(path: str) -> str:
    return path if "/" in path else f"./{path}"


def add_funnel_options(parser: argparse.ArgumentParser, default_all: bool = True) -> None:
    """--funnel and --funnel-file; without `default_all`, at least one is required (and the usage says so)."""
    title = "funnels (repeatable, in the order given; default: the presets)"
    if not default_all:
        title = "funnels (at least one; repeatable, in the order given: outputs follow that order)"
        parser.formatter_class = _FunnelRequiredFormatter
    group = parser.add_argument_group(title)
    group.add_argument("--funnel", action=_FunnelSpec, metavar="NAME", help=f"a preset: {', '.join(PRESETS)}")
    group.add_argument("--funnel-file", action=_FunnelSpec, metavar="PATH", help="a funnel definition file (JSON)")
    parser.set_defaults(funnel_specs=None, funnels_default_all=default_all)


class _FunnelRequiredFormatter(argparse.HelpFormatter):
    """Shows the two funnel options as one required, repeatable choice in the usage line.

    argparse has no "at least one of these" group, so it would print both as optional.
    """

    _OPTIONAL = re.compile(r"\[--funnel NAME\](\s+)\[--funnel-file PATH\]")

    def format_help(self) -> str:
        return self._OPTIONAL.sub(r"(--funnel NAME |\1--funnel-file PATH)...", super().format_help(), count=1)


def funnels_from(args: argparse.Namespace) -> list[Funnel]:
    specs: Sequence[str] | None = args.funnel_specs
    if not specs:
        if not args.funnels_default_all:
            raise UsageError("name at least one --funnel NAME or --funnel-file PATH")
        specs = PRESETS
    return load_funnels(specs)


def timestamp(text: str) -> int:
    """argparse type: an RFC 3339 timestamp -> microseconds."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> int:
    """argparse type: '24h', '30d', '90m', or seconds -> microseconds."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def future_tolerance(text: str) -> int:
    """argparse type: a duration, or 'off' -> microseconds (off: larger than any span of event times)."""
    try:
        return settingvalues.tolerance(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
