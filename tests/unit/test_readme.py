"""The README against the commands themselves, so the two cannot drift apart.

- The command table shows each command's usage exactly as its --help prints it (every
  option, its metavar, what is required), and lists every command, nothing more.
- The configuration table is the worker's settings table: name, default and meaning,
  row for row, as `worker --help` lists them.
- The worked simulate -> replay -> report example prints what the README shows.
- Its relative links lead to files of the repository, and `make demo ARGS=...` passes
  the options it shows on to the demo.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from processor.cli import build_parser
from processor.config.settings import documented

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PROG = "funnel-processor"


def section(title: str) -> list[str]:
    """The lines of the README section whose heading is `title`, up to the next heading."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"#+ {re.escape(title)}", line))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start + 1 : end]


def table_rows(lines: list[str]) -> list[list[str]]:
    """The cells of a Markdown table's body rows (the first table in `lines`); '\\|' is a literal bar."""
    rows = [line for line in lines if line.startswith("|")]
    cells = [[cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]
    return cells[2:]  # past the header and its --- line


def commands() -> dict[str, argparse.ArgumentParser]:
    """'replay', 'topics create'... -> its parser: every command a user can run."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        # argparse has no public way to list a parser's actions or subcommands.
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
        for action in subs:
            for name, child in action.choices.items():
                walk(child, f"{prefix} {name}".strip())
        if not subs and prefix:
            found[prefix] = parser

    walk(build_parser(), "")
    return found


def usage(parser: argparse.ArgumentParser) -> str:
    """The usage line as --help prints it, on one line, without the program name and [-h]."""
    text = " ".join(parser.format_usage().split())
    return text.removeprefix(f"usage: {PROG} ").replace(" [-h]", "")


def test_the_command_table_shows_every_commands_usage_as_its_help_does() -> None:
    rows = table_rows(section("Command line"))
    shown = {}
    for first, *_ in rows:
        code = re.fullmatch(r"`([^`]+)`", first)
        assert code, f"the first cell must be the usage in backquotes: {first!r}"
        shown[code.group(1)] = first
    expected = {usage(parser) for parser in commands().values()}
    assert sorted(shown) == sorted(expected)


def test_every_option_has_help_text_and_no_help_prints_a_literal_percent_pair() -> None:
    for name, parser in {"": build_parser(), **commands()}.items():
        for action in parser._actions:  # noqa: SLF001 -- argparse has no public list of actions
            if action.option_strings and not isinstance(action, argparse._HelpAction):  # noqa: SLF001
                assert action.help, f"{name} {action.option_strings[0]} has no help text"
        text = parser.format_help()
        assert "%%" not in text and "%(" not in text, f"{name}: {text}"


@pytest.mark.parametrize("name", ["replay", "simulate"])
def test_a_required_funnel_is_shown_as_required(name: str) -> None:
    assert usage(commands()[name]).startswith(f"{name} (--funnel NAME | --funnel-file PATH)... ")
    assert "[--funnel" not in usage(commands()[name])


def test_the_configuration_table_is_the_settings_table() -> None:
    rows = table_rows(section("Configuration"))
    assert [tuple(cell.replace("`", "") for cell in row) for row in rows] == documented(), (
        "README's configuration table differs from processor/config/settings.py; its rows should read:\n"
        + "\n".join(f"| `{var}` | {_code(default)} | {meaning} |" for var, default, meaning in documented())
    )


def _code(default: str) -> str:
    return default if default.startswith("(") else f"`{default}`"


def test_every_setting_says_what_it_means_in_worker_help() -> None:
    text = " ".join(commands()["worker"].format_help().split())
    for var, default, meaning in documented():
        assert meaning, f"{var} has no meaning: give its _Var row in processor/config/settings.py a meaning"
        assert f"{var} = {default} {meaning}" in text


def test_relative_links_lead_to_files_of_the_repository() -> None:
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
    assert links, "the README links nothing?"
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert missing == []
    assert "](docs/semantics.md)" in text  # the contract, in the project itself


def test_the_version_option_is_documented_and_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert f"`{PROG} --version`" in README.read_text()
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(rf"{PROG} \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_make_demo_passes_args_to_the_demo() -> None:
    assert 'make demo ARGS="--duration 20"' in README.read_text()
    # -o: take the virtualenv as it is; --help makes the demo print its options and start nothing.
    result = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "demo", "ARGS=--duration 20 --interval 3 --help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--duration SECONDS" in result.stdout and "--interval SECONDS" in result.stdout


def _block(title: str, language: str) -> list[str]:
    """The lines of the first ```language block of a README section."""
    lines = section(title)
    start = lines.index(f"```{language}") + 1
    return lines[start : lines.index("```", start)]


def _timeless(line: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", line)


def test_the_worked_example_runs_as_shown(tmp_path: Path) -> None:
    """The simulate -> replay -> report example gives the lines the README shows (times aside)."""
    (tmp_path / "trial-to-paid.json").write_text("\n".join(_block("Your own funnels", "json")))
    script = _block("Without a broker: simulate, replay, report", "sh")
    steps: list[tuple[str, list[str]]] = []
    for line in script:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif not line.startswith("... "):
            steps[-1][1].append(line)
    assert [command.split()[:2] for command, _ in steps] == [
        [PROG, "simulate"],
        [PROG, "replay"],
        [PROG, "report"],
    ]
    for command, expected in steps:
        argv, _, redirect = command.partition(" > ")
        words = argv.split()
        result = subprocess.run(
            [sys.executable, "-m", "processor", *words[1:]], cwd=tmp_path, capture_output=True, timeout=120, check=False
        )
        assert result.returncode == 0, (command, result.stderr)
        if redirect:
            (tmp_path / redirect).write_bytes(result.stdout)
            shown = result.stderr.decode().splitlines()
        else:
            shown = (result.stdout + result.stderr).decode().splitlines()
        assert _in_order([_timeless(line) for line in expected], [_timeless(line) for line in shown]), (
            f"{command}: the README shows\n" + "\n".join(expected) + "\nthe command prints\n" + "\n".join(shown)
        )


def _in_order(expected: list[str], shown: list[str]) -> bool:
    """Whether every expected line is printed, in that order (other lines may come between)."""
    printed = iter(shown)
    return all(any(line == out for out in printed) for line in expected)
