"""Every word the console shows exists in Chinese and English.

The English is in the templates and the code, marked for gettext; the Chinese is in the zh_CN
catalog. These tests fail when a marked string has no translation (or one that drops a
placeholder), when a template carries text that is not marked at all, and when the catalog keeps
entries the code no longer uses (``make messages`` refreshes it).
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from jinja2 import Environment

from services.common import i18n

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "services" / "console" / "templates"
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[sdrfg]")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def source_messages() -> dict[str, set[str]]:
    """msgid -> the files it comes from, extracted with the same mapping as ``make messages``."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, set[str]] = {}
    for filename, _line, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, set()).add(filename)
    return found


def catalog(locale: str = "zh_CN") -> dict[str, tuple[str, ...]]:
    with i18n.catalog_path(locale).open("rb") as source:
        po = read_po(source)
    entries: dict[str, tuple[str, ...]] = {}
    for message in po:
        if not message.id:
            continue
        msgid = message.id[0] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        entries[msgid] = tuple(s for s in strings if s and not message.fuzzy)
    return entries


def test_the_extraction_finds_the_console_strings() -> None:
    found = source_messages()
    # a template string, a string marked in Python, a platform value's label
    assert {"Access requests", "Enter an API key.", "public service"} <= set(found)
    assert len(found) > 200


def test_every_marked_string_has_a_chinese_translation() -> None:
    translated = catalog()
    missing = {
        msgid: sorted(files) for msgid, files in source_messages().items() if not translated.get(msgid)
    }
    assert not missing, f"no zh_CN translation (run `make messages`, then translate): {missing}"


def test_every_translation_keeps_the_placeholders_of_its_english() -> None:
    with i18n.catalog_path("zh_CN").open("rb") as source:
        po = read_po(source)
    wrong = {}
    for message in po:
        if not message.id:
            continue
        # the form used for many (the plural English) names every placeholder a translation needs
        english = message.id[-1] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if any(set(PLACEHOLDER.findall(s)) != set(PLACEHOLDER.findall(english)) for s in strings):
            wrong[english] = strings
    assert not wrong


def test_the_catalog_keeps_no_string_the_code_no_longer_uses() -> None:
    stale = set(catalog()) - set(source_messages())
    assert not stale, f"remove with `make messages`: {sorted(stale)}"


class _Text(HTMLParser):
    """The text a person reads in an HTML fragment: character data and the attributes shown."""

    SHOWN = {"placeholder", "title", "alt", "aria-label"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._skip += 1
        self.parts.extend(value or "" for name, value in attrs if name in self.SHOWN)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


CODE_EXAMPLES = {"cbk_…", 'district in ["Putuo", "Baoshan"]'}
"""Shown as they are in every language: an API key's prefix, a row-filter expression."""


def unmarked_text(source: str) -> Iterator[str]:
    """Words outside ``{{ }}``, ``{% %}`` and ``{% trans %}`` blocks: text no catalog can reach."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    html: list[str] = []
    in_trans = False
    block: list[str] = []
    for _line, token, value in env.lex(source):
        if token == "block_begin":
            block = []
        elif token == "name" and block == []:
            block.append(value)
            if value == "trans":
                in_trans = True
            elif value == "endtrans":
                in_trans = False
        elif token == "data" and not in_trans:
            html.append(value)
        elif token in ("variable_begin", "block_begin") and not in_trans:
            html.append(" ")
    parser = _Text()
    parser.feed("".join(html))
    for text in parser.parts:
        text = text.strip()
        if text and text not in CODE_EXAMPLES and re.search(r"[A-Za-z]{2,}", text):
            yield text


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_no_template_text_is_left_unmarked(template: str) -> None:
    assert list(unmarked_text((TEMPLATES / template).read_text())) == []


def test_the_unmarked_text_check_sees_text_and_shown_attributes() -> None:
    source = '<p>Hello {{ name }}</p><input placeholder="search here"><p>{{ _("Marked") }}</p>'
    assert list(unmarked_text(source)) == ["Hello", "search here"]
    marked = "{% trans n=1 %}Hello {{ n }}{% endtrans %}<style>p { color: red; }</style>"
    assert list(unmarked_text(marked)) == []


def _problem_types() -> list[type]:
    import importlib
    import pkgutil

    import services
    from services.common.problems import Problem

    for module in pkgutil.walk_packages(services.__path__, "services."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    seen: list[type] = []
    pending = [Problem]
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    return seen


def test_every_problem_title_of_every_service_has_a_chinese_translation() -> None:
    translated = catalog()
    problems = _problem_types()
    assert len(problems) > 60
    missing = sorted({cls.title for cls in problems if not translated.get(cls.title)})
    assert not missing, f"problem titles without a zh_CN translation (run `make messages`): {missing}"


def _named(call: ast.Call) -> str | None:
    function = call.func
    return function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)


def _english_only(node: ast.expr | None) -> bool:
    """A literal or an f-string (or text glued or formatted from one): no catalog can reach it."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp):
        return _english_only(node.left) or _english_only(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and _english_only(node.func.value)
    return False


def _detail_position(problem: type) -> int | None:
    """Where a problem type's constructor takes its ``detail`` positionally (None: it builds its own)."""
    names = [
        parameter.name
        for parameter in inspect.signature(problem).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    return names.index("detail") if "detail" in names else None


def english_only_problems(source: str, problems: dict[str, int | None]) -> Iterator[tuple[int, str]]:
    """(line, what) of each problem built with a detail, and each field error with a message,
    written as a plain string or an f-string rather than a ``Sentence``: English to every reader."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _named(node)
        if name == "FieldError":
            message = next((k.value for k in node.keywords if k.arg == "message"), None)
            if _english_only(message):
                yield node.lineno, "FieldError message"
        elif name in problems:
            position = problems[name]
            detail = next((k.value for k in node.keywords if k.arg == "detail"), None)
            if detail is None and position is not None and len(node.args) > position:
                detail = node.args[position]
            if _english_only(detail):
                yield node.lineno, f"{name} detail"


def test_the_english_only_check_sees_literals_and_f_strings_not_sentences() -> None:
    problems = {"NotFound": 0, "CatalogNotReady": None}
    source = (
        "raise NotFound(f'no need {need_id!r}')\n"
        "raise exceptions.NotFound('gone', errors=[FieldError(path='/x', rule='r', message='bad')])\n"
        "raise NotFound(detail='no ' + kind)\n"
        "raise NotFound(Sentence(N_('no need %(id)r'), id=need_id))\n"
        "raise CatalogNotReady('feeds')\n"
        "FieldError(path='/x', rule='r', message=Sentence(N_('bad')))\n"
    )
    assert sorted(english_only_problems(source, problems)) == [
        (1, "NotFound detail"),
        (2, "FieldError message"),
        (2, "NotFound detail"),
        (3, "NotFound detail"),
    ]


def test_every_problem_detail_and_field_error_is_a_sentence() -> None:
    """A detail or field error message is written as a ``Sentence`` so that it reaches the reader
    in Chinese or English as asked (a plain string or an f-string is English to everyone)."""
    problems = {cls.__name__: _detail_position(cls) for cls in _problem_types()}
    found = [
        f"{path.relative_to(ROOT)}:{line} {what}"
        for path in sorted((ROOT / "services").rglob("*.py"))
        for line, what in english_only_problems(path.read_text(), problems)
    ]
    assert not found, "write these as Sentence(N_(...), ...) and translate them:\n" + "\n".join(found)
