"""The row filter language's syntax: tokens, the filter tree and the recursive-descent parser.

Grammar (keywords are case-insensitive; ``and`` binds tighter than ``or``)::

    filter     := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" or ")" | condition
    condition  := operand [ ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
                          | ["not"] "in" list
                          | "is" ["not"] "null" ]
    operand    := field | string | number | "true" | "false" | "null"
    field      := name ("." name)*           name := a letter or _, then letters, digits, _
    list       := "[" [literal ("," literal)* [","]] "]"

Strings take double or single quotes and JSON's escapes (``\\n``, ``\\"``, ``\\u00e9``, also
``\\'``); numbers are JSON's. A condition without an operator is a boolean field (or ``true`` /
``false``): true when the field holds ``true``.

The parser is a tokenizer and a recursive-descent parser that builds a tree of plain nodes, which
:mod:`.row_filter` compiles to closures; nothing is ever evaluated as Python. Filters are bounded
(:data:`MAX_TEXT`, :data:`MAX_DEPTH`, :data:`MAX_LIST_ITEMS`, :data:`MAX_NAME_PARTS`) and every
error names a character position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from services.common.i18n import N_, Sentence

MAX_TEXT = 4096
"""Longest filter text, in characters."""
MAX_DEPTH = 32
"""Deepest nesting of parentheses and ``not``."""
MAX_LIST_ITEMS = 1000
MAX_NAME_PARTS = 16
MAX_NUMBER_CHARS = 64


class RowFilterError(ValueError):
    """A row filter that does not parse, names an unknown field, or exceeds a bound."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at character {position})")
        self.message = str(message)
        """The reason in English, as logs keep it."""
        self.sentence = message if isinstance(message, Sentence) else Sentence(message)
        """The reason, to be shown in the reader's language."""
        self.position = position


# --- tokens ------------------------------------------------------------------------------------

_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_NAME = re.compile(r"[^\W\d]\w*")
_DIGITS = frozenset("0123456789")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPACE = re.compile(r"\s*")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


@dataclass(frozen=True)
class Token:
    kind: str
    """``name``, ``keyword``, ``string``, ``number``, ``op`` (operators and punctuation), ``end``."""
    value: Any
    position: int
    text: str


def _describe(token: Token) -> str:
    return Sentence(N_("the end of the filter")) if token.kind == "end" else repr(token.text)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token; RowFilterError at the first bad character."""
    tokens: list[Token] = []
    position, length = 0, len(text)
    while True:
        position = _SPACE.match(text, position).end()  # type: ignore[union-attr]
        if position >= length:
            tokens.append(Token("end", None, position, ""))
            return tokens
        char = text[position]
        if char in "\"'":
            value, end = _string(text, position)
            tokens.append(Token("string", value, position, text[position:end]))
            position = end
            continue
        if char in _DIGITS or (char == "-" and text[position + 1 : position + 2] in _DIGITS):
            found = _NUMBER.match(text, position)
            assert found is not None  # a digit, or '-' and a digit, always starts a number
            end = found.end()
            if end < length and (text[end].isalnum() or text[end] in "_."):
                raise RowFilterError(Sentence(N_("malformed number")), position)
            literal = found.group()
            if len(literal) > MAX_NUMBER_CHARS:
                raise RowFilterError(
                    Sentence(N_("a number has at most %(limit)s characters"), limit=MAX_NUMBER_CHARS),
                    position,
                )
            number: int | float
            if any(mark in literal for mark in ".eE"):
                number = float(literal)
                if not math.isfinite(number):
                    raise RowFilterError(Sentence(N_("number out of range")), position)
            else:
                number = int(literal)
            tokens.append(Token("number", number, position, literal))
            position = end
            continue
        found = _NAME.match(text, position)
        if found:
            word = found.group()
            kind = "keyword" if word.lower() in _KEYWORDS else "name"
            tokens.append(Token(kind, word.lower() if kind == "keyword" else word, position, word))
            position = found.end()
            continue
        for operator in _OPERATORS:
            if text.startswith(operator, position):
                tokens.append(Token("op", operator, position, operator))
                position += len(operator)
                break
        else:
            if char in "()[],.":
                tokens.append(Token("op", char, position, char))
                position += 1
            elif char == "=":
                raise RowFilterError(Sentence(N_("unexpected '=': equality is written '=='")), position)
            else:
                raise RowFilterError(Sentence(N_("unexpected character %(char)r"), char=char), position)


def _string(text: str, start: int) -> tuple[str, int]:
    """The value of the string literal opening at ``start`` and the position after it."""
    quote, position, parts = text[start], start + 1, []
    while True:
        end = position
        while end < len(text) and text[end] != quote and text[end] != "\\":
            end += 1
        parts.append(text[position:end])
        if end >= len(text):
            raise RowFilterError(Sentence(N_("unterminated string")), start)
        if text[end] == quote:
            return "".join(parts), end + 1
        escape = text[end + 1 : end + 2]
        if escape in _ESCAPES:
            parts.append(_ESCAPES[escape])
            position = end + 2
        elif escape == "u" and _HEX4.fullmatch(text, end + 2, end + 6):
            code, position = int(text[end + 2 : end + 6], 16), end + 6
            low = text[position : position + 6]
            if 0xD800 <= code < 0xDC00 and low[:2] == "\\u" and _HEX4.fullmatch(low, 2):
                second = int(low[2:], 16)
                if 0xDC00 <= second < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (second - 0xDC00)
                    position += 6
            parts.append(chr(code))
        elif escape == "u":
            raise RowFilterError(Sentence(N_("\\u must be followed by four hex digits")), end)
        else:
            if escape:
                raise RowFilterError(Sentence(N_("unknown escape \\%(escape)s"), escape=escape), end)
            raise RowFilterError(Sentence(N_("unterminated string")), end)


# --- the filter tree ---------------------------------------------------------------------------
# Parsing yields nodes; each node compiles to a closure over the record. The nodes are kept so that
# a filter can say which fields it reads and render itself.


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]
    position: int

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Literal:
    value: Any  # str, int, float, bool or None


Operand = Field | Literal


@dataclass(frozen=True)
class Compare:
    operator: str  # one of _OPERATORS
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Member:
    operand: Operand
    items: tuple[Any, ...]
    negated: bool


@dataclass(frozen=True)
class IsNull:
    operand: Operand
    negated: bool


@dataclass(frozen=True)
class Truth:
    """A bare operand used as a condition: true when it holds ``true``."""

    operand: Operand


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class All:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Any_:
    operands: tuple[Node, ...]


Node = Compare | Member | IsNull | Truth | Not | All | Any_


class _Parser:
    def __init__(self, text: str, fields: Collection[str] | None) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0
        self.fields = fields

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at(self, kind: str, value: Any = None) -> bool:
        token = self.token
        return token.kind == kind and (value is None or token.value == value)

    def expect(self, kind: str, value: Any, what: str) -> Token:
        """The next token, if it is ``kind`` ``value``; else the error that names ``what`` (marked ``N_``)."""
        if not self.at(kind, value):
            raise RowFilterError(
                Sentence(
                    N_("expected %(what)s, found %(found)s"), what=Sentence(what), found=_describe(self.token)
                ),
                self.token.position,
            )
        return self.advance()

    def parse(self) -> Node:
        node = self.disjunction()
        if not self.at("end"):
            raise RowFilterError(
                Sentence(
                    N_("expected 'and', 'or' or the end of the filter, found %(found)s"),
                    found=_describe(self.token),
                ),
                self.token.position,
            )
        return node

    def disjunction(self) -> Node:
        operands = [self.conjunction()]
        while self.at("keyword", "or"):
            self.advance()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Any_(tuple(operands))

    def conjunction(self) -> Node:
        operands = [self.negation()]
        while self.at("keyword", "and"):
            self.advance()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else All(tuple(operands))

    def negation(self) -> Node:
        if self.at("keyword", "not") or self.at("op", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise RowFilterError(
                    Sentence(
                        N_("a filter nests 'not' and parentheses at most %(limit)s deep"), limit=MAX_DEPTH
                    ),
                    self.token.position,
                )
            if self.advance().value == "not":
                node: Node = Not(self.negation())
            else:
                node = self.disjunction()
                self.expect("op", ")", N_("')'"))
            self.depth -= 1
            return node
        return self.condition()

    def condition(self) -> Node:
        start = self.token
        left = self.operand()
        token = self.token
        if token.kind == "op" and token.value in _OPERATORS:
            self.advance()
            right_start = self.token
            right = self.operand()
            for operand, at in ((left, start), (right, right_start)):
                if isinstance(operand, Literal) and operand.value is None:
                    raise RowFilterError(
                        Sentence(N_("nothing equals or orders with null: write 'is null' or 'is not null'")),
                        at.position,
                    )
            return Compare(token.value, left, right)
        if self.at("keyword", "in"):
            self.advance()
            return Member(left, self.literal_list(), negated=False)
        if self.at("keyword", "not"):
            self.advance()
            self.expect("keyword", "in", N_("'in' after 'not'"))
            return Member(left, self.literal_list(), negated=True)
        if self.at("keyword", "is"):
            self.advance()
            negated = self.at("keyword", "not")
            if negated:
                self.advance()
            self.expect(
                "keyword", "null", N_("'null' after 'is'") if not negated else N_("'null' after 'is not'")
            )
            return IsNull(left, negated)
        if isinstance(left, Field) or isinstance(left.value, bool):
            return Truth(left)
        raise RowFilterError(
            Sentence(
                N_("expected a comparison after %(start)s, found %(found)s"),
                start=_describe(start),
                found=_describe(token),
            ),
            token.position,
        )

    def operand(self) -> Operand:
        token = self.token
        if token.kind == "name":
            return self.field()
        if token.kind in ("string", "number"):
            self.advance()
            return Literal(token.value)
        if token.kind == "keyword" and token.value in ("true", "false", "null"):
            self.advance()
            return Literal({"true": True, "false": False, "null": None}[token.value])
        raise RowFilterError(
            Sentence(N_("expected a field or a value, found %(found)s"), found=_describe(token)),
            token.position,
        )

    def field(self) -> Field:
        start = self.advance()
        parts = [start.value]
        while self.at("op", "."):
            self.advance()
            part = self.token
            if part.kind not in ("name", "keyword"):
                raise RowFilterError(
                    Sentence(N_("expected a field name after '.', found %(found)s"), found=_describe(part)),
                    part.position,
                )
            self.advance()
            parts.append(part.text)
            if len(parts) > MAX_NAME_PARTS:
                raise RowFilterError(
                    Sentence(N_("a field name has at most %(limit)s parts"), limit=MAX_NAME_PARTS),
                    start.position,
                )
        field = Field(tuple(parts), start.position)
        if self.fields is not None and field.name not in self.fields:
            raise RowFilterError(Sentence(N_("unknown field %(name)r"), name=field.name), start.position)
        return field

    def literal_list(self) -> tuple[Any, ...]:
        opening = self.expect("op", "[", N_("'[' opening a list of values"))
        items: list[Any] = []
        while not self.at("op", "]"):
            token = self.token
            if token.kind in ("string", "number"):
                items.append(token.value)
            elif token.kind == "keyword" and token.value in ("true", "false"):
                items.append(token.value == "true")
            elif token.kind == "keyword" and token.value == "null":
                raise RowFilterError(Sentence(N_("null is never in a list: write 'is null'")), token.position)
            else:
                raise RowFilterError(
                    Sentence(N_("expected a value or ']', found %(found)s"), found=_describe(token)),
                    token.position,
                )
            self.advance()
            if len(items) > MAX_LIST_ITEMS:
                raise RowFilterError(
                    Sentence(N_("a list has at most %(limit)s values"), limit=MAX_LIST_ITEMS),
                    opening.position,
                )
            if not self.at("op", "]"):
                self.expect("op", ",", N_("',' or ']'"))
        self.advance()
        return tuple(items)


def parse_tree(text: str, fields: Collection[str] | None = None) -> Node:
    """The filter tree of ``text``; RowFilterError (with a position) where it does not parse, or,
    when ``fields`` is given, names a field that is not in it."""
    return _Parser(text, fields).parse()
