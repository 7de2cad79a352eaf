"""Babel extraction of the services' user-facing strings (``make messages``).

Each service declares its errors as :class:`services.common.problems.Problem` subclasses whose
class attributes name the ``title`` (``slug, title = "dataset-not-found", "Dataset not found"``).
A title is a user-facing string like any other: :func:`extract_problem_titles` finds every string
assigned to ``title`` in a class body, so the catalogs hold them without a gettext call at each
declaration. :func:`extract_service_messages` reads a service module for both: its titles and the
strings marked for gettext (``_``, ``N_``), among them every problem ``detail`` and field error
message written as a :class:`services.common.i18n.Sentence`.
"""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator, Mapping
from typing import IO, Any

from babel.messages.extract import extract_python


def _title_strings(target: ast.expr, value: ast.expr | None) -> Iterator[tuple[int, str]]:
    if isinstance(target, ast.Name) and target.id == "title":
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            yield value.lineno, value.value
    elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
        for name, item in zip(target.elts, value.elts, strict=False):
            yield from _title_strings(name, item)


def extract_problem_titles(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Mapping[str, Any]
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel's extraction interface: (line, function, message, comments) per problem title."""
    tree = ast.parse(fileobj.read())
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for statement in node.body:
            if isinstance(statement, ast.Assign):
                pairs: list[tuple[ast.expr, ast.expr | None]] = [
                    (t, statement.value) for t in statement.targets
                ]
            elif isinstance(statement, ast.AnnAssign):
                pairs = [(statement.target, statement.value)]
            else:
                continue
            for target, value in pairs:
                for line, title in _title_strings(target, value):
                    yield line, "", title, ["title of a problem type"]


def extract_service_messages(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Mapping[str, Any]
) -> Iterator[Any]:
    """Babel's extraction interface for a service module: its marked strings, then its problem titles."""
    source = fileobj.read()
    yield from extract_python(io.BytesIO(source), keywords, comment_tags, dict(options))  # type: ignore[arg-type]
    yield from extract_problem_titles(io.BytesIO(source), keywords, comment_tags, options)
