"""The tests' own layout: a test module imports what it shares from ``tests/support``,
``tests/factories.py`` or its conftest's fixtures, never from another test module or a conftest."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SHARED = ("tests.support", "tests.factories")
TOOLS = ("tests.bench", "tests.soak")
"""The benchmark and the soak are tools of their own (``python -m tests.bench``, ``-m tests.soak``);
a test may run their pieces."""

LEFT_TO_THE_INGEST_SPLIT = {
    ("unit/ingest/test_publish.py", "tests.support.ingest_units"),
    ("unit/ingest/test_routing.py", "tests.support.ingest_units"),
    ("unit/ingest/test_validation.py", "tests.support.ingest_units"),
}
"""Imports that still break the rule, in tests that move with ingest's modules; the list can only
shrink (an entry that no longer offends fails)."""


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _is_test_module(name: str) -> bool:
    parts = name.split(".")
    return any(part.startswith("test_") or part == "conftest" for part in parts)


def _offences() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(TESTS.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        importer = path.relative_to(TESTS).as_posix()
        is_test = path.name.startswith("test_") or path.name == "conftest.py"
        for module in _imports(path):
            if module != "tests" and not module.startswith("tests."):
                continue
            if _is_test_module(module) or (is_test and not module.startswith(SHARED + TOOLS)):
                found.add((importer, module))
    return found


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    assert _offences() == set(), "import these from tests/support instead"


def test_the_scan_sees_an_import_of_a_test_module() -> None:
    assert _is_test_module("tests.integration.test_authorization")
    assert _is_test_module("tests.hostile.conftest")
    assert not _is_test_module("tests.support.platform")
