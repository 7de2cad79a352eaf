"""A plain ``pip install .`` (no extras) gives every command what it imports.

Walks every import in ``services/`` and ``citybase/`` (function-local ones included, since the CLI
imports lazily) and checks that each third-party module comes from a distribution that the
project's own ``dependencies`` bring in, directly or through theirs. A module that only a dev or
optional extra provides would break ``citybase serve`` on a documented install.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"services", "citybase", "tests"}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _extras(requirement: str) -> set[str]:
    match = re.match(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*\[([^\]]*)\]", requirement)
    return {extra.strip() for extra in match.group(1).split(",")} if match else set()


def _installed_closure(requirements: list[str]) -> set[str]:
    """The distributions that ``requirements`` install, following each one's own requirements
    (with the extras asked for, without test/dev extras nobody asked for)."""
    seen: set[str] = set()
    todo = [(_name(r), _extras(r)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            spec, _, marker = requirement.partition(";")
            wanted = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if wanted and wanted.group(1) not in extras:
                continue
            todo.append((_name(spec), _extras(spec)))
    return seen


def _imported_modules() -> dict[str, str]:
    """Top-level module -> the first file that imports it."""
    found: dict[str, str] = {}
    for root in ("services", "citybase"):
        for path in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_imported_module_comes_with_a_plain_install() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = _installed_closure(project["dependencies"])
    providers = metadata.packages_distributions()

    missing = []
    for module, where in sorted(_imported_modules().items()):
        if module in FIRST_PARTY or module in sys.stdlib_module_names or module == "__future__":
            continue
        distributions = {_name(d) for d in providers.get(module, [])}
        assert distributions, f"{module} (imported by {where}) is not installed at all"
        if not distributions & installed:
            missing.append(f"{module} (imported by {where}, from {sorted(distributions)})")

    assert not missing, "imported but not in [project] dependencies: " + "; ".join(missing)


def test_the_closure_is_not_trivially_everything() -> None:
    """The check above can fail: dev-only tools are outside what a plain install brings."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = _installed_closure(project["dependencies"])
    assert {"great-expectations", "pandas", "fastapi", "kafka-python"} <= installed
    assert not {"pytest", "hypothesis", "schemathesis", "selenium"} & installed
