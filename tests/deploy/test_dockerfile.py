"""The Dockerfile and .dockerignore, read as text and checked against the code.

No Docker engine is needed (or used): these tests prove what can be read from the
files: pinned base images, the build copies what pyproject.toml packages, the build
context keeps exactly that, the entrypoint is the console script, the default command
parses, the environment is settings the worker reads, and a fixed unprivileged UID
that compose and Kubernetes run as too. Whether the image builds and starts is for a
machine with Docker (`docker build .`, `docker compose up`).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from processor.cli import build_parser
from processor.config.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# An exact Python release on an exact Debian release: python:3.11.13-slim-bookworm.
PINNED_PYTHON = re.compile(r"python:3\.(?P<minor>\d+)\.\d+-slim-(?P<debian>bookworm|trixie)(@sha256:[0-9a-f]{64})?")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: comments dropped, continuations joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, args = pending.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
        pending = ""
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The build stages, each starting with its FROM."""
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERFILE_INSTRUCTIONS = instructions(DOCKERFILE)
STAGES = stages(DOCKERFILE)
FINAL = STAGES[-1]


def args_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for name, args in stage if name == keyword]


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in args_of(stage, "ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def final_uid() -> int:
    user = args_of(FINAL, "USER")[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER {user!r}: use a numeric UID so runAsNonRoot can check it"
    return int(user.partition(":")[0])


def test_every_stage_starts_from_the_same_exact_python_release() -> None:
    bases = [args.split()[0] for args in args_of(DOCKERFILE_INSTRUCTIONS, "FROM")]
    assert len(bases) >= 2, "a build stage and a runtime stage"
    for base in bases:
        match = PINNED_PYTHON.fullmatch(base)
        assert match, f"FROM {base}: pin an exact release, e.g. python:3.11.13-slim-bookworm"
        required = re.fullmatch(r">=3\.(\d+)", PYPROJECT["project"]["requires-python"])
        assert required and int(match["minor"]) >= int(required[1]), f"{base} is older than requires-python"
    # The runtime stage copies the build stage's virtualenv: same interpreter, same paths.
    assert len(set(bases)) == 1, bases
    # A `# syntax=` directive pulls a BuildKit frontend image: pinned too, if there is one.
    for frontend in re.findall(r"^#\s*syntax\s*=\s*(\S+)", DOCKERFILE, re.MULTILINE):
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", frontend), frontend


def test_the_image_runs_as_a_fixed_unprivileged_uid_that_compose_and_kubernetes_also_use() -> None:
    uid = final_uid()
    assert uid >= 1000
    assert any(f"--uid {uid}" in run for run in args_of(FINAL, "RUN")), "the user is created with that UID"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    users = {name: svc["user"] for name, svc in compose["services"].items() if "build" in svc}
    assert users and all(user.partition(":")[0] == str(uid) for user in users.values()), users
    statefulset = yaml.safe_load((ROOT / "deploy/k8s/base/statefulset.yaml").read_text())
    assert statefulset["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_the_build_copies_what_the_package_build_reads_and_installs_it() -> None:
    build = STAGES[0]
    copied = {source.rstrip("/") for args in args_of(build, "COPY") for source in args.split()[:-1]}
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *wheel["packages"], *wheel["force-include"]}
    assert needed <= copied, f"the build needs {sorted(needed - copied)} too"
    assert any(re.search(r"\bpip install (--no-deps )?\.(\s|$)", run) for run in args_of(build, "RUN"))
    assert any(args.startswith("--from=") for args in args_of(FINAL, "COPY")), "the runtime copies the install"


def pip_installs(stage: list[tuple[str, str]]) -> list[tuple[int, list[str]]]:
    """(instruction index, arguments) of each `pip install` in the stage's RUN commands."""
    found = []
    for index, (keyword, args) in enumerate(stage):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = shlex.split(command)
            if len(words) >= 2 and words[0].endswith("pip") and words[1] == "install":
                found.append((index, words[2:]))
    return found


def test_the_build_installs_the_dependencies_from_the_lock_alone() -> None:
    """requirements.lock, hash-checked, then the package without resolving anything (tests/deploy/test_lock.py
    checks the lock against pyproject.toml): a rebuild installs the same dependencies."""
    build = STAGES[0]
    installs = pip_installs(build)
    from_lock = [
        i
        for i, words in installs
        if "requirements.lock" in words and words[words.index("requirements.lock") - 1] == "-r"
    ]
    assert from_lock, "the build stage runs pip install -r requirements.lock"
    for index, words in installs:
        if index in from_lock:
            assert "--require-hashes" in words, "every file checked against the lock's hashes"
            assert "--only-binary=:all:" in words, "wheels only: no sdist built with an unpinned build backend"
        else:
            assert "--no-deps" in words, f"pip install {' '.join(words)}: resolves dependencies outside the lock"
            assert index > max(from_lock), "the package goes in after the locked dependencies"
    assert any("--no-deps" in words and "." in words for _, words in installs), "the package itself is installed"
    copied = [args.split()[:-1] for keyword, args in build[: min(from_lock)] if keyword == "COPY"]
    assert ["requirements.lock"] in copied, "the lock is copied before it is installed"
    assert any(re.search(r"\bpip check\b", run) for run in args_of(build, "RUN")), "the build fails if pins clash"


def test_the_entrypoint_is_the_console_script_and_the_default_command_runs_the_worker() -> None:
    entrypoint = json.loads(args_of(FINAL, "ENTRYPOINT")[-1])  # exec form: signals reach the worker
    assert entrypoint == ["funnel-processor"]
    assert entrypoint[0] in PYPROJECT["project"]["scripts"]
    command = json.loads(args_of(FINAL, "CMD")[-1])
    assert build_parser().parse_args(command).command == "worker"


def test_the_image_environment_is_settings_the_worker_reads() -> None:
    env = {key: value for key, value in image_env(FINAL).items() if key.startswith("FUNNEL_")}
    assert env.keys() <= ENV_VARS, sorted(env.keys() - ENV_VARS)
    settings = Settings.from_env(env)
    assert settings.web_bind == "0.0.0.0", "a container serves its web port on every interface"
    assert [int(port) for port in args_of(FINAL, "EXPOSE")] == [settings.web_port]
    volumes = json.loads(args_of(FINAL, "VOLUME")[-1])
    assert str(settings.data_dir) in volumes, "RocksDB writes to a volume, not the image"
    uid = final_uid()
    assert any(f"--owner {uid}" in run and str(settings.data_dir) in run for run in args_of(FINAL, "RUN"))


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) per .dockerignore line, in order; the last match decides (Docker's rule)."""
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        assert not set("[]\\") & set(pattern), f"{line!r}: this test's matcher knows only *, ** and ?"
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((excludes, re.compile(regex)))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether Docker sends `path` to the build: a pattern matches the path or one of its parents."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for excludes, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = not excludes
    return included


def test_the_build_context_holds_the_sources_and_nothing_heavy() -> None:
    rules = dockerignore_rules((ROOT / ".dockerignore").read_text())
    sources = [
        path.relative_to(ROOT).as_posix()
        for top in ("processor", "schemas")
        for path in (ROOT / top).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    sources += ["pyproject.toml", "requirements.lock", PYPROJECT["project"]["readme"]]
    left_out = [path for path in sources if not in_context(path, rules)]
    assert not left_out, f".dockerignore leaves out files the build copies: {left_out[:5]}"
    for path in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "out/x.jsonl", "processor/__pycache__/a.pyc"):
        assert not in_context(path, rules), f"{path} would be sent to the build"


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        (["*", "!processor/"], "processor/funnel/engine.py", True),
        (["*", "!processor/"], "tests/unit/test_x.py", False),
        (["*", "!processor/", "**/__pycache__"], "processor/funnel/__pycache__/x.pyc", False),
        (["docs"], "docs/research/a.md", False),
        (["docs"], "processor/docs.py", True),
    ],
)
def test_the_dockerignore_matcher_follows_dockers_rules(patterns: list[str], path: str, expected: bool) -> None:
    assert in_context(path, dockerignore_rules("\n".join(patterns))) is expected
