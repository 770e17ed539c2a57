"""The tests keep their own house: each fixture defined once, no private name shared.

A fixture defined in two places is two fixtures with one name: which one a test gets
depends on where it sits, and a fix to one misses the other. A fixture more than one
module needs belongs in a conftest. A helper another module imports is public: ruff's
SLF rule catches `obj._name` across modules, not `from module import _name`, so that
is checked here. A test module imports from no other test module: a helper two modules
need lives in a support module named after what it holds (`tests/factories.py`,
`tests/integration/workers.py`, `tests/unit/fakes.py`...), so moving or deleting a test
never breaks another. Each check is shown failing on a planted fault.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def is_fixture(decorator: ast.expr) -> bool:
    """`@pytest.fixture`, `@pytest.fixture(...)`, `@fixture`, `@fixture(...)`."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
    return name == "fixture"


def fixtures(sources: dict[str, str]) -> dict[str, list[str]]:
    """Fixture name -> the files that define it, over module-level functions."""
    found: dict[str, list[str]] = defaultdict(list)
    for path, text in sources.items():
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(map(is_fixture, node.decorator_list)):
                found[node.name].append(path)
    return found


def private_imports(sources: dict[str, str]) -> list[str]:
    """`from X import _name` of a module of the project or of the tests (not of third parties)."""
    ours = {Path(path).stem for path in sources} | {"processor", "localbrokers", "bench", "scripts"}
    found = []
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ours:
                found += [f"{path}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


def imports_of_test_modules(sources: dict[str, str]) -> list[str]:
    """Imports of a test module (`test_*.py`) by any module of the tests, at any depth."""
    tests = {Path(path).stem for path in sources if Path(path).name.startswith("test_")}
    found = []
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            found += [f"{path}: {module}" for module in modules if module.split(".")[0] in tests]
    return found


def sources() -> dict[str, str]:
    return {str(path.relative_to(TESTS)): path.read_text() for path in sorted(TESTS.rglob("*.py"))}


def test_every_fixture_is_defined_once() -> None:
    found = fixtures(sources())
    assert len(found) > 10, "no fixtures found: the scan is broken"
    twice = {name: paths for name, paths in found.items() if len(paths) > 1}
    assert not twice, f"fixtures defined more than once (move them to a conftest): {twice}"


def test_no_module_imports_a_private_name_of_another() -> None:
    assert private_imports(sources()) == []


def test_no_module_imports_a_test_module() -> None:
    found = sources()
    assert sum(Path(path).name.startswith("test_") for path in found) > 50, "no test modules found: the scan is broken"
    moved = "move the shared helper into a support module named after what it holds"
    assert imports_of_test_modules(found) == [], moved


def test_the_checks_fail_on_a_planted_fault() -> None:
    planted = {
        "integration/conftest.py": "import pytest\n\n@pytest.fixture\ndef broker():\n    return 1\n",
        "integration/test_a.py": "from pytest import fixture\n\n@fixture(scope='session')\ndef broker():\n    pass\n",
        "integration/test_b.py": "from test_a import _helper\nfrom aiokafka.util import _private\n",
    }
    assert fixtures(planted)["broker"] == ["integration/conftest.py", "integration/test_a.py"]
    assert private_imports(planted) == ["integration/test_b.py: test_a._helper"]


def test_the_test_module_import_check_fails_on_a_planted_fault() -> None:
    planted = {
        "integration/test_a.py": "def helper():\n    pass\n",
        "integration/test_b.py": "from test_a import helper\nfrom expected import oracle\nfrom testing import x\n",
        "integration/workers.py": "def start():\n    import test_a\n",
        "unit/test_c.py": "from . import test_a\nimport pytest, test_b.sub\n",
    }
    assert imports_of_test_modules(planted) == [
        "integration/test_b.py: test_a",
        "integration/workers.py: test_a",
        "unit/test_c.py: test_b.sub",
    ]
