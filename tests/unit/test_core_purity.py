"""The funnel core does no I/O: nothing under processor/funnel/ may import an I/O library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "processor" / "funnel"
FORBIDDEN = {"faust", "aiokafka", "kafka", "prometheus_client", "mode", "aiohttp", "socket", "asyncio", "requests"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_modules_exist() -> None:
    assert len(list(CORE.glob("*.py"))) >= 5


def test_no_core_module_imports_an_io_library() -> None:
    offenders = {
        str(path.relative_to(CORE)): sorted(_imported_roots(path) & FORBIDDEN) for path in sorted(CORE.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_imports_pull_in_no_io_library_transitively() -> None:
    modules = [f"processor.funnel.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__"]
    probe = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({sorted(FORBIDDEN)!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_check_itself_catches_an_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from kafka import KafkaProducer\nimport prometheus_client.core\n")
    assert _imported_roots(bad) & FORBIDDEN == {"kafka", "prometheus_client"}
