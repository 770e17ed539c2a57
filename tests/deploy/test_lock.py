"""requirements.lock: the runtime dependencies the image installs, pinned with their hashes.

`make lock` writes it (pip-compile over pyproject.toml, with Python 3.11 on Linux x86_64,
the image's platform); the Dockerfile installs it hash-checked, then the package with
`--no-deps`. Checked here without a network or a Docker engine:
- every entry is an exact pin (`name==version`) with at least one sha256 hash, no marker;
- every runtime requirement of pyproject.toml is pinned at a version its specifier accepts;
- the pins are exactly the closure of those requirements (extras included) as the pinned
  releases themselves declare it: nothing missing, nothing left over, every specifier met;
- the project's virtualenv runs the pinned versions (`make setup` installs the lock first),
  so the tests exercise what the image ships.
The closure and the virtualenv are read from installed metadata, so those two checks need
the lock's interpreter: Python 3.11 on Linux x86_64.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: Version
    hashes: tuple[str, ...]


def parse_lock(text: str) -> dict[NormalizedName, Pin]:
    """The pins of a pip-compile lock with hashes; a ValueError names the first bad entry."""
    pins: dict[NormalizedName, Pin] = {}
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ValueError(f"{line.split()[0]}: the lock names no index or option, pip's own configuration does")
        requirement_text, *hashes = re.split(r"\s+--hash=", line)
        requirement = Requirement(requirement_text)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            raise ValueError(f"{requirement_text}: not an exact pin (name==version)")
        if requirement.marker is not None or requirement.extras:
            raise ValueError(f"{requirement_text}: a lock for one platform has no markers or extras")
        if not hashes or not all(SHA256.fullmatch(value) for value in hashes):
            raise ValueError(f"{requirement_text}: every pin needs its sha256 hashes, got {hashes}")
        name = canonicalize_name(requirement.name)
        if name in pins:
            raise ValueError(f"{name} is pinned twice")
        pins[name] = Pin(name, Version(specifiers[0].version), tuple(hashes))
    return pins


LOCK_TEXT = LOCK_FILE.read_text()
LOCK = parse_lock(LOCK_TEXT)


def unmet(requirements: Iterable[Requirement], pins: Mapping[NormalizedName, Pin]) -> list[str]:
    """The requirements that the pins leave out or pin at a version outside the specifier."""
    problems = []
    for requirement in requirements:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{shown(requirement)}: not pinned")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{shown(requirement)}: pinned at {pin.version}")
    return problems


def applies(requirement: Requirement, environment: Mapping[str, str], extra: str) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({**environment, "extra": extra})


def shown(requirement: Requirement) -> str:
    """The requirement without its marker: name[extras]specifier."""
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


def closure(roots: Iterable[Requirement], requires: Mapping[str, list[str]]) -> list[tuple[str, Requirement]]:
    """(who asks, requirement) for the roots and, transitively, what each one declares.

    `requires` maps a canonical name to its declared requirements (Requires-Dist lines);
    markers are evaluated for this interpreter, with the extras each asker names.
    """
    environment = {key: str(value) for key, value in default_environment().items()}
    found: list[tuple[str, Requirement]] = []
    todo = [("pyproject.toml", root) for root in roots]
    expanded: set[tuple[str, str]] = set()
    while todo:
        asker, requirement = todo.pop()
        found.append((asker, requirement))
        name = canonicalize_name(requirement.name)
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in expanded:
                continue
            expanded.add((name, extra))
            for text in requires[name]:
                declared = Requirement(text)
                if applies(declared, environment, extra) and not (extra and applies(declared, environment, "")):
                    todo.append((f"{name}[{extra}]" if extra else name, declared))
    return found


def lock_problems(pins: Mapping[NormalizedName, Pin], requires: Mapping[str, list[str]]) -> list[str]:
    """What is wrong with the pins as the runtime closure: missing, unmet or left-over entries."""
    needed = closure(RUNTIME, requires)
    problems = [f"{asker} asks {problem}" for asker, req in needed for problem in unmet([req], pins)]
    asked = {canonicalize_name(req.name) for _, req in needed}
    problems += [
        f"{name}=={pins[name].version}: pinned but nothing asks for it" for name in sorted(pins.keys() - asked)
    ]
    return problems


def installed_requires() -> dict[str, list[str]]:
    """Requires-Dist of every distribution installed in this interpreter, by canonical name."""
    return {
        canonicalize_name(dist.metadata["Name"]): list(dist.requires or [])
        for dist in importlib.metadata.distributions()
    }


def lock_python() -> str:
    match = re.search(r"autogenerated by pip-compile with Python (\d+\.\d+)", LOCK_TEXT)
    assert match, "the lock's header names the Python it was resolved with"
    return match[1]


def image_python() -> str:
    match = re.search(r"^FROM python:(\d+\.\d+)\.\d+-", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "the Dockerfile's build stage starts from an exact python image"
    return match[1]


needs_lock_platform = pytest.mark.skipif(
    f"{sys.version_info.major}.{sys.version_info.minor}" != lock_python()
    or sys.platform != "linux"
    or platform.machine() != "x86_64",
    reason=f"the lock is resolved for Python {lock_python()} on Linux x86_64 (the image); "
    f"this is Python {sys.version_info.major}.{sys.version_info.minor} on {sys.platform} {platform.machine()}",
)


def test_the_lock_is_resolved_with_the_images_python_and_says_how_to_regenerate_it() -> None:
    assert lock_python() == image_python()
    assert re.search(r"^#\s+make lock$", LOCK_TEXT, re.MULTILINE), "the header names `make lock`"
    assert re.search(r"^lock:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_every_runtime_requirement_of_pyproject_is_pinned_at_a_version_it_accepts() -> None:
    assert RUNTIME, "pyproject.toml lists the runtime dependencies"
    assert unmet(RUNTIME, LOCK) == []
    # The extra that gives Faust its RocksDB tables is part of what is locked.
    assert "rocksdict" in LOCK


@needs_lock_platform
def test_the_lock_is_exactly_the_closure_of_the_runtime_requirements() -> None:
    assert lock_problems(LOCK, installed_requires()) == []


@needs_lock_platform
def test_the_virtualenv_runs_the_pinned_versions() -> None:
    installed = {name: Version(importlib.metadata.version(name)) for name in LOCK}
    differ = {
        name: f"{installed[name]} installed, {pin.version} pinned"
        for name, pin in LOCK.items()
        if installed[name] != pin.version
    }
    assert differ == {}, (
        "run `make setup` (it installs requirements.lock first), or `make lock` after changing pyproject"
    )


PLANTED = """\
# a comment
alpha==1.0 \\
    --hash=sha256:{h}
    # via funnel-processor (pyproject.toml)
beta==2.0 \\
    --hash=sha256:{h} \\
    --hash=sha256:{h}
""".replace("{h}", "0" * 64)


def test_the_lock_parser_reads_pins_and_refuses_what_a_lock_must_not_hold() -> None:
    assert {name: str(pin.version) for name, pin in parse_lock(PLANTED).items()} == {"alpha": "1.0", "beta": "2.0"}
    assert len(parse_lock(PLANTED)[canonicalize_name("beta")].hashes) == 2
    for bad, why in [
        ("alpha>=1.0 --hash=sha256:" + "0" * 64, "not an exact pin"),
        ("alpha==1.* --hash=sha256:" + "0" * 64, "not an exact pin"),
        ("alpha==1.0", "sha256 hashes"),
        ("alpha==1.0 --hash=md5:00", "sha256 hashes"),
        ('alpha==1.0 ; python_version < "3.12" --hash=sha256:' + "0" * 64, "no markers"),
        ("--find-links /opt/wheels", "no index or option"),
        (PLANTED + "Alpha==1.0 --hash=sha256:" + "0" * 64, "pinned twice"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_lock(bad)


def test_the_closure_check_finds_missing_unmet_and_left_over_pins() -> None:
    """The check itself can fail: a made-up metadata world where the pins go wrong each way."""
    pins = {
        pin.name: pin
        for pin in (Pin(canonicalize_name(r.name), Version("99"), ("sha256:" + "0" * 64,)) for r in RUNTIME)
    }
    requires: dict[str, list[str]] = {name: [] for name in pins}
    faust = canonicalize_name("faust-streaming")
    requires[faust] = ["mode-streaming<1", 'rocksdict ; extra == "rocksdict"', 'colorama ; sys_platform == "win32"']
    requires["mode-streaming"] = []
    requires["rocksdict"] = []
    problems = lock_problems({**pins, canonicalize_name("leftover"): pins[faust]}, requires)
    assert problems.count(f"{faust} asks mode-streaming<1: not pinned") == 1
    assert f"{faust}[rocksdict] asks rocksdict: not pinned" in problems
    assert not any("colorama" in problem for problem in problems), "a marker for another platform asks nothing"
    assert "leftover==99: pinned but nothing asks for it" in problems
    assert any(
        problem.startswith("pyproject.toml asks faust-streaming") and "pinned at 99" in problem for problem in problems
    )
