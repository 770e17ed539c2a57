"""The import contract between processor's rooms: each layer imports only the layers below it.

    main       the entry point: the command line, given the worker to start   (__main__ imports it)
    cli        argparse and one module per command      (only processor/main imports it)
    tools      report figures, the simulator             worker       the Faust adapter
    kafka      topic names, admin and plain clients
    config     settings, funnel loading, schemas, mappings
    funnel     the pure core

`tools` and `worker` sit side by side: neither imports the other, so the commands' figures
never depend on Faust, and the worker never on the report. `cli` does not import the worker
either: `processor/main.py` hands it the function that starts the worker. Every `import` and
`from ... import` of every module is read from its syntax tree, including those made inside
a function (the commands import kafka-python and Faust lazily), so a lazy import cannot slip
past. The self-tests run the same check over a small tree with a planted violation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "processor"

# What each room may import of processor, besides itself. A room not listed here fails the
# test: a new sub-package must say where it stands.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "funnel": frozenset(),
    "config": frozenset({"funnel"}),
    "kafka": frozenset({"funnel", "config"}),
    "tools": frozenset({"funnel", "config", "kafka"}),
    "worker": frozenset({"funnel", "config", "kafka"}),
    "cli": frozenset({"funnel", "config", "kafka", "tools"}),
    "main": frozenset({"cli", "config", "worker"}),
    "__main__": frozenset({"main"}),
    "__init__": frozenset(),
}


def room_of(path: Path, package: Path) -> str:
    """The room of a module: its sub-package, or its own name at the top of the package."""
    parts = path.relative_to(package).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported_modules(path: Path, package: Path) -> set[str]:
    """Every module a file of `package` imports, made absolute, wherever in the file the import stands."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    home = parts[:-1]  # the package a relative import starts from (for an __init__, its own)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = home[: len(home) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from processor import cli`
    return found


def breaches(package: Path, may_import: dict[str, frozenset[str]]) -> dict[str, list[str]]:
    """Each module of `package` that imports a room it may not, with the rooms it imports."""
    name = package.name
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        room = room_of(path, package)
        allowed = may_import.get(room)
        where = str(path.relative_to(package.parent))
        if allowed is None:
            found[where] = [f"room {room!r} is not in the contract"]
            continue
        rooms = set()
        for module in imported_modules(path, package):
            parts = module.split(".")
            if parts[0] == name and len(parts) > 1 and parts[1] in may_import and parts[1] != room:
                rooms.add(parts[1])
        bad = sorted(rooms - allowed)
        if bad:
            found[where] = bad
    return found


def test_every_room_is_in_the_contract() -> None:
    rooms = {room_of(path, PACKAGE) for path in PACKAGE.rglob("*.py")}
    assert rooms == set(MAY_IMPORT)


def test_each_room_imports_only_the_rooms_below_it() -> None:
    assert breaches(PACKAGE, MAY_IMPORT) == {}


def _tree(root: Path, files: dict[str, str]) -> Path:
    package = root / "processor"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


CLEAN = {
    "__init__.py": "",
    "__main__.py": "from processor.main import main\n",
    "main.py": "from processor.cli import main\nfrom processor.worker import bootstrap\n",
    "funnel/__init__.py": "",
    "funnel/engine.py": "import dataclasses\n",
    "config/__init__.py": "",
    "config/settings.py": "from processor.funnel.engine import Engine\n",
    "kafka/__init__.py": "",
    "kafka/clients.py": "from kafka import KafkaProducer\nfrom processor.config.settings import Settings\n",
    "tools/__init__.py": "",
    "tools/report.py": "from processor.funnel import engine\n",
    "worker/__init__.py": "",
    "worker/agent.py": "from processor.kafka import clients\n",
    "cli/__init__.py": "from processor.cli import replay\nfrom processor.tools import report\n",
}


@pytest.mark.parametrize(
    ("where", "text", "expected"),
    [
        ("funnel/engine.py", "from processor.config.settings import Settings\n", ["config"]),
        ("tools/report.py", "def run():\n    from processor.worker import agent\n", ["worker"]),  # a lazy import
        ("config/settings.py", "import processor.kafka.clients\n", ["kafka"]),
        ("worker/agent.py", "from processor import cli\n", ["cli"]),
        ("kafka/clients.py", "from ..worker.agent import Agent\n", ["worker"]),  # a relative import
        ("worker/agent.py", "from processor.tools.report import figures\n", ["tools"]),
        (
            "cli/worker.py",
            "def run():\n    from processor.worker import bootstrap\n",
            ["worker"],
        ),
        ("tools/report.py", "from processor.main import main\n", ["main"]),
    ],
)
def test_the_check_itself_catches_a_planted_violation(
    tmp_path: Path, where: str, text: str, expected: list[str]
) -> None:
    package = _tree(tmp_path, CLEAN)
    assert breaches(package, MAY_IMPORT) == {}
    (package / where).write_text(text)
    assert breaches(package, MAY_IMPORT) == {f"processor/{where}": expected}


def test_the_check_itself_catches_a_room_left_out_of_the_contract(tmp_path: Path) -> None:
    package = _tree(tmp_path, {**CLEAN, "adapters/__init__.py": ""})
    assert breaches(package, MAY_IMPORT) == {
        "processor/adapters/__init__.py": ["room 'adapters' is not in the contract"]
    }
