"""CONTRIBUTING.md, CHANGELOG.md and ARCHITECTURE.md against the repository, so they cannot point at what is gone.

Every relative link and every repository path they name exists, every `make` target they
name is one the Makefile has, every pytest marker they name is registered, and the
changelog keeps Keep a Changelog's shape.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("CONTRIBUTING.md", "CHANGELOG.md", "ARCHITECTURE.md")
TOP = ("processor/", "localbrokers/", "tests/", "bench/", "scripts/", "schemas/", "docs/", "deploy/", ".ci/")
NAMED_FILES = re.compile(r"^[\w.-]+\.(md|toml|lock|py|yml)$")


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def paths_named(text: str) -> list[str]:
    """Repository paths in code spans: under a top-level folder, or a top-level file by name."""
    found = []
    for span in code_spans(text):
        word = span.split()[0] if span.split() else ""
        if word.startswith(TOP) or NAMED_FILES.match(word):
            found.append(word.rstrip(".,:"))
    return found


def make_targets_named(text: str) -> set[str]:
    """Targets of `make` commands: in a code span or at the start of a line of a code block."""
    return set(re.findall(r"(?:^|`)make ([a-z][\w-]*)", text, re.MULTILINE))


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


@pytest.mark.parametrize("name", DOCS)
def test_links_and_paths_lead_to_files_of_the_repository(name: str) -> None:
    text = (ROOT / name).read_text()
    links = [link for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) if "://" not in link]
    named = paths_named(text)
    assert named, f"{name} names no path? the scan is broken"
    missing = [path for path in [*links, *named] if not (ROOT / path).exists()]
    assert not missing, f"{name} points at what does not exist: {missing}"


@pytest.mark.parametrize("name", DOCS)
def test_every_make_target_named_is_in_the_makefile(name: str) -> None:
    named = make_targets_named((ROOT / name).read_text())
    assert not named - makefile_targets(), f"{name} names make targets the Makefile lacks"


def test_the_markers_contributing_names_are_registered() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    registered = {line.split(":")[0] for line in pyproject["tool"]["pytest"]["ini_options"]["markers"]}
    named = {
        span for span in code_spans((ROOT / "CONTRIBUTING.md").read_text()) if span in {"kafka_only", "also_on_tansu"}
    }
    assert named == {"kafka_only", "also_on_tansu"} <= registered


def test_the_changelog_has_an_unreleased_section_and_only_keep_a_changelog_headings() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert releases[0] == "[Unreleased]"
    assert all(re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", release) for release in releases[1:]), releases
    kinds = set(re.findall(r"^### (.+)$", text, re.MULTILINE))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds


def test_the_checks_find_what_is_wrong() -> None:
    text = "see `processor/nowhere.py` and `tests/unit/` and `requirements.lock`; run `make nothing` or make test"
    assert paths_named(text) == ["processor/nowhere.py", "tests/unit/", "requirements.lock"]
    assert not (ROOT / "processor/nowhere.py").exists()
    assert make_targets_named(text) == {"nothing"}  # prose ("make test") is not a command
    assert make_targets_named("```sh\nmake demo\n```") - makefile_targets() == set()
