"""docs/semantics.md, the contract, stays tied to the tests that prove it.

Each rule of the document is a heading with an anchor (`### <a id="entry"></a>Entry`)
and lists its tests as `tests/path.py::test_name`. This fails when a rule lists no
test, when a listed test does not exist, when a test of the core's semantics is listed
under no rule, or when a link in the document leads nowhere. A self-test shows that
each of those checks can fail.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "semantics.md"
# The tests of the core's semantics: every one must back a rule of the document.
MUST_BE_CITED = ("tests/unit/test_semantics_*.py", "tests/property/test_invariants.py")

_HEADING = re.compile(r"^#+ ")
_ANCHOR = re.compile(r'<a id="([a-z0-9-]+)"></a>')
_TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+(?:::\w+)?)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def rules(text: str) -> dict[str, list[tuple[str, str]]]:
    """Anchor -> the (file, test) pairs listed in its section, for every anchored heading."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if _HEADING.match(line):
            anchor = _ANCHOR.search(line)
            current = anchor.group(1) if anchor else None
            if current is not None:
                assert current not in found, f"anchor #{current} is used twice"
                found[current] = []
        elif current is not None:
            found[current] += _TEST_REF.findall(line)
    return found


def defined_tests(path: Path) -> set[str]:
    """Test functions of a file: 'test_x', and 'TestClass::test_y' for methods."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test_")
            )
    return names


def problems(text: str, root: Path, must_be_cited: tuple[str, ...]) -> list[str]:
    found = rules(text)
    out = [f"#{anchor}: lists no test" for anchor, refs in found.items() if not refs]
    cited = {(path, name) for refs in found.values() for path, name in refs}
    for path, name in sorted(cited):
        file = root / path
        if not file.is_file():
            out.append(f"{path}::{name}: no such file")
        elif name not in defined_tests(file):
            out.append(f"{path}::{name}: no such test")
    for pattern in must_be_cited:
        for file in sorted(root.glob(pattern)):
            path = file.relative_to(root).as_posix()
            out += [
                f"{path}::{name}: cited under no rule"
                for name in sorted(defined_tests(file))
                if (path, name) not in cited
            ]
    for target in _LINK.findall(text):
        if target.startswith("#"):
            if target[1:] not in found:
                out.append(f"link {target}: no such anchor")
        elif "://" not in target and not (DOC.parent / target.split("#")[0]).exists():
            out.append(f"link {target}: no such file")
    return out


def test_every_rule_is_backed_by_tests_that_exist_and_every_semantics_test_backs_a_rule() -> None:
    assert problems(DOC.read_text(), ROOT, MUST_BE_CITED) == []


def test_the_document_covers_the_contracts_topics() -> None:
    anchors = set(rules(DOC.read_text()))
    assert {
        "touchpoint",
        "dead-letters",
        "entry",
        "forward-only",
        "nth",
        "lost",
        "stalled",
        "one-drop-off-per-visit",
        "reactivation",
        "order",
        "duplicates",
        "clock",
        "replay-until",
        "idle-clock",
        "transition",
        "dropoff",
        "ids",
        "sequences",
        "output-order",
        "determinism",
        "no-output-lost",
    } <= anchors


def test_the_checks_can_fail(tmp_path: Path) -> None:
    tests = tmp_path / "tests" / "unit"
    tests.mkdir(parents=True)
    (tests / "test_semantics_x.py").write_text(
        "def test_a():\n    pass\n\n\ndef test_b():\n    pass\n\n\nclass TestC:\n    def test_d(self):\n        pass\n"
    )
    doc = "\n".join(
        [
            "# Title",
            "Free text with no anchor lists nothing and needs nothing. See [a](#a) and [z](#zz).",
            '## <a id="a"></a>Rule a',
            "- `tests/unit/test_semantics_x.py::test_a`",
            "- `tests/unit/test_semantics_x.py::TestC::test_d`",
            '## <a id="b"></a>Rule b',
            "Nothing listed here.",
            '## <a id="c"></a>Rule c',
            "- `tests/unit/test_semantics_x.py::test_gone`",
            "- `tests/unit/test_elsewhere.py::test_a`",
        ]
    )
    assert problems(doc, tmp_path, ("tests/unit/test_semantics_*.py",)) == [
        "#b: lists no test",
        "tests/unit/test_elsewhere.py::test_a: no such file",
        "tests/unit/test_semantics_x.py::test_gone: no such test",
        "tests/unit/test_semantics_x.py::test_b: cited under no rule",
        "link #zz: no such anchor",
    ]
