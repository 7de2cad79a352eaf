"""The guarded YAML loader every contract document (and YAML embedded in one) goes through.

It refuses aliases (the "billion laughs" bomb needs them), duplicate keys and nesting deeper than
``max_depth``, and reads plain scalars by the YAML 1.2 core schema (``no`` stays a string,
``2024-05-01`` stays a string, ``010`` is ten), so that a contract means the same in YAML and in
JSON. :mod:`.odcs` loads whole documents with it, :mod:`.derive` a Great Expectations rule's
``implementation``: both are held to the same rules, and neither imports the other for it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from services.catalog.contracts.exceptions import ContractInvalid
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError, json_pointer


def _libyaml_parser() -> Any:
    """libyaml's parser (PyYAML's C extension), or None where PyYAML was built without it."""
    try:
        from yaml._yaml import CParser
    except ImportError:
        return None
    return CParser


_LibyamlParser: Any = _libyaml_parser()

MAX_NESTING_DEPTH = 64
"""Default cap on nested mappings and sequences; ODCS documents rarely go deeper than 12."""


def document_pointer(location: list[str | int] | tuple[str | int, ...] | Any) -> str:
    """RFC 6901 pointer; the whole document is ``""`` (``json_pointer`` would say ``"/"``, the key "")."""
    return json_pointer(list(location)) if len(location) else ""


# --- the loader --------------------------------------------------------------------------------


class _Refused(Exception):
    """Raised inside the loaders for a document citybase refuses; carries the field error."""

    def __init__(self, error: FieldError) -> None:
        super().__init__(error.message)
        self.error = error


def _at(node_or_mark: Any) -> str:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _CoreSchemaResolver(BaseResolver):
    """YAML 1.2 core schema for plain scalars, so that YAML means what the same JSON would.

    PyYAML implements YAML 1.1, where ``no``/``off`` are booleans, ``2024-05-01`` is a date,
    ``010`` is eight and ``1:30`` is ninety: each has broken a real enum or SLA value somewhere.
    """


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
):
    _CoreSchemaResolver.add_implicit_resolver(_tag, re.compile(_pattern), _first)


class _ContractConstructor(SafeConstructor):
    """Safe constructor with YAML 1.2 integers (no octal ``010``, no sexagesimal ``1:30``)."""

    def construct_core_int(self, node: Node) -> int:
        value = str(self.construct_scalar(node))  # type: ignore[arg-type]
        sign, digits = (-1, value[1:]) if value.startswith("-") else (1, value.lstrip("+"))
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)


_ContractConstructor.add_constructor(  # type: ignore[type-var]  # the stub binds it to SafeConstructor
    "tag:yaml.org,2002:int", _ContractConstructor.construct_core_int
)


class _GuardedComposer(Composer):
    """A composer that refuses aliases, duplicate keys and deep nesting, tracking the JSON Pointer."""

    max_depth: int = MAX_NESTING_DEPTH
    # Provided by yaml.parser.Parser in the loader's MRO; declared for the type checker.
    check_event: Any
    peek_event: Any

    def __init__(self) -> None:
        super().__init__()
        self._location: list[str | int] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # Keys are composed with index None; a mapping value's index is its key node.
        segment: str | int | None = index.value if isinstance(index, ScalarNode) else index
        if isinstance(index, Node) and not isinstance(index, ScalarNode):
            segment = "?"
        if segment is not None:
            self._location.append(segment)
        try:
            if self.check_event(AliasEvent):
                event = self.peek_event()
                raise _Refused(
                    FieldError(
                        path=self._here(),
                        rule="yaml-alias",
                        message=Sentence(
                            N_("%(at)s: YAML aliases are not accepted; write the value out"),
                            at=_at(event.start_mark),
                        ),
                    )
                )
            if len(self._location) > self.max_depth:
                raise _Refused(
                    FieldError(
                        path=self._here(),
                        rule="depth",
                        message=Sentence(
                            N_("%(at)s: nesting deeper than %(max_depth)s levels"),
                            at=_at(self.peek_event().start_mark),
                            max_depth=self.max_depth,
                        ),
                    )
                )
            node: Node = super().compose_node(parent, index)  # type: ignore[assignment]
            if isinstance(node, MappingNode):
                self._refuse_duplicate_keys(node)
            return node
        finally:
            if segment is not None:
                self._location.pop()

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        seen: set[tuple[str, Any]] = set()
        for key, _value in node.value:
            if not isinstance(key, ScalarNode):
                continue  # complex keys are refused later: JSON keys are strings
            identity = (key.tag, key.value)
            if identity in seen:
                raise _Refused(
                    FieldError(
                        path=document_pointer([*self._location, key.value]),
                        rule="duplicate-key",
                        message=Sentence(N_("%(at)s: duplicate key %(value)r"), at=_at(key), value=key.value),
                    )
                )
            seen.add(identity)

    def _here(self) -> str:
        return document_pointer(self._location)


class _ContractLoader(Reader, Scanner, Parser, _GuardedComposer, _ContractConstructor, _CoreSchemaResolver):
    """PyYAML's pure-Python SafeLoader stack with the guards above (the C loader cannot be hooked)."""

    def __init__(self, stream: str, max_depth: int) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _GuardedComposer.__init__(self)
        _ContractConstructor.__init__(self)
        _CoreSchemaResolver.__init__(self)
        self.max_depth = max_depth


if _LibyamlParser is not None:

    class _FastContractLoader(_GuardedComposer, _LibyamlParser, _ContractConstructor, _CoreSchemaResolver):
        """The same guards, constructor and resolver over libyaml's scanner and parser.

        Only the composer is needed from Python (it is what the guards hook); libyaml turns the
        text into events about five times faster than PyYAML's pure-Python reader, scanner and
        parser, which PyYAML's own test suite checks produce the same events.
        """

        def __init__(self, stream: str, max_depth: int) -> None:
            _LibyamlParser.__init__(self, stream)
            _GuardedComposer.__init__(self)
            _ContractConstructor.__init__(self)
            _CoreSchemaResolver.__init__(self)
            self.max_depth = max_depth

    _LOADERS: tuple[type[Any], ...] = (_FastContractLoader, _ContractLoader)
else:  # pragma: no cover - PyYAML wheels ship libyaml
    _LOADERS = (_ContractLoader,)


def load_yaml(text: str, *, max_depth: int = MAX_NESTING_DEPTH) -> Any:
    """Load one YAML document with the contract loader's guards; raise :class:`ContractInvalid`.

    Also used by :mod:`derive` for YAML embedded in a contract (a Great Expectations rule's
    ``implementation``), which must be held to the same rules as the document around it.
    """
    if len(_LOADERS) > 1 and not Reader.NON_PRINTABLE.search(text):
        try:
            return _load_with(_LOADERS[0], text, max_depth)
        except Exception:
            # Whatever the fast loader refuses, the pure-Python loader refuses too, and says why
            # in the words (and with the line and column) publishers have always been shown.
            pass
    try:
        return _load_with(_ContractLoader, text, max_depth)
    except _Refused as refused:
        raise ContractInvalid(
            Sentence(N_("the contract is not acceptable YAML")), errors=[refused.error]
        ) from None
    except yaml.MarkedYAMLError as error:
        where = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "invalid YAML"
        message = f"{_at(where)}: {problem}" if where is not None else problem
        raise ContractInvalid(
            Sentence(N_("the contract is not valid YAML")),
            errors=[FieldError(path="", rule="yaml-syntax", message=message)],
        ) from None
    except yaml.YAMLError as error:  # reader errors: control characters and the like
        raise ContractInvalid(
            Sentence(N_("the contract is not valid YAML")),
            errors=[FieldError(path="", rule="yaml-syntax", message=str(error))],
        ) from None


def _load_with(loader_class: type[Any], text: str, max_depth: int) -> Any:
    loader = None
    try:
        # The reader checks for control characters as it is built, so building it can fail too.
        loader = loader_class(text, max_depth)
        return loader.get_single_data()
    finally:
        if loader is not None:
            loader.dispose()
