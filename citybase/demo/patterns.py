"""Strings that match a contract's ``pattern``: a small regular-expression parser and sampler."""

from __future__ import annotations

import random
import re
from typing import Any


class PatternNotSupported(ValueError):
    """A ``pattern`` uses regular-expression syntax the sampler does not generate from."""


_CLASS_ESCAPES = {
    "d": "0123456789",
    "w": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    "s": " ",
}
_PRINTABLE = [chr(code) for code in range(0x21, 0x7F)]
_Node = tuple[str, Any]


class _PatternParser:
    """A parser for the regular expressions of contracts: literals, classes, groups, alternation
    and quantifiers; anchors are dropped. Lookarounds and back-references are refused."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def parse(self) -> _Node:
        node = self._alternation()
        if self.at != len(self.text):
            raise PatternNotSupported(f"unexpected {self.text[self.at]!r} at {self.at} in {self.text!r}")
        return node

    def _peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def _alternation(self) -> _Node:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.at += 1
            branches.append(self._sequence())
        return ("alt", branches) if len(branches) > 1 else branches[0]

    def _sequence(self) -> _Node:
        items: list[_Node] = []
        while self._peek() not in ("", "|", ")"):
            atom = self._atom()
            if atom is not None:
                items.append(self._quantified(atom))
        return ("seq", items)

    def _atom(self) -> _Node | None:
        char = self.text[self.at]
        self.at += 1
        if char in "^$":
            return None
        if char == ".":
            return ("set", list(_CLASS_ESCAPES["w"][26:62]))  # capitals and digits
        if char == "[":
            return ("set", self._class())
        if char == "(":
            if self.text.startswith("?:", self.at):
                self.at += 2
            elif self.text.startswith("?P<", self.at):
                self.at = self.text.index(">", self.at) + 1
            elif self._peek() == "?":
                raise PatternNotSupported(f"lookarounds are not generated: {self.text!r}")
            inner = self._alternation()
            if self._peek() != ")":
                raise PatternNotSupported(f"unbalanced parenthesis in {self.text!r}")
            self.at += 1
            return inner
        if char == "\\":
            return self._escape()
        if char in "*+?{":
            raise PatternNotSupported(f"nothing to repeat at {self.at - 1} in {self.text!r}")
        return ("lit", char)

    def _escape(self) -> _Node | None:
        char = self.text[self.at]
        self.at += 1
        if char in "AZzbB":
            return None
        if char in _CLASS_ESCAPES:
            return ("set", list(_CLASS_ESCAPES[char]))
        if char in "DWS":
            excluded = _CLASS_ESCAPES[char.lower()]
            return ("set", [c for c in _PRINTABLE if c not in excluded])
        if char == "u":
            code, self.at = self.text[self.at : self.at + 4], self.at + 4
            return ("lit", chr(int(code, 16)))
        if char.isdigit():
            raise PatternNotSupported(f"back-references are not generated: {self.text!r}")
        return ("lit", {"n": "\n", "t": "\t"}.get(char, char))

    def _class(self) -> list[str]:
        negate = self._peek() == "^"
        if negate:
            self.at += 1
        members: list[str] = []
        first = True
        while True:
            if self.at >= len(self.text):
                raise PatternNotSupported(f"unterminated character class in {self.text!r}")
            char = self.text[self.at]
            if char == "]" and not first:
                self.at += 1
                break
            first = False
            self.at += 1
            if char == "\\":
                escaped = self.text[self.at]
                self.at += 1
                if escaped in _CLASS_ESCAPES:
                    members.extend(_CLASS_ESCAPES[escaped])
                    continue
                char = escaped
            if self._peek() == "-" and self.text[self.at + 1 : self.at + 2] not in ("]", ""):
                end = self.text[self.at + 1]
                if end == "\\":
                    end = self.text[self.at + 2]
                    self.at += 1
                self.at += 2
                members.extend(chr(code) for code in range(ord(char), ord(end) + 1))
            else:
                members.append(char)
        if negate:
            excluded = set(members)
            return [c for c in _PRINTABLE if c not in excluded]
        return sorted(set(members))

    def _quantified(self, atom: _Node) -> _Node:
        char = self._peek()
        low, high = 1, 1
        if char == "?":
            low, high = 0, 1
        elif char == "*":
            low, high = 0, 3
        elif char == "+":
            low, high = 1, 4
        elif char == "{" and re.match(r"\{\d*(,\d*)?\}", self.text[self.at :]):
            close = self.text.index("}", self.at)
            low_text, comma, high_text = self.text[self.at + 1 : close].partition(",")
            low = int(low_text or 0)
            high = int(high_text) if high_text else (low + 3 if comma else low)
            self.at = close
        else:
            return atom
        self.at += 1
        if self._peek() == "?":  # lazy: the same strings
            self.at += 1
        return ("repeat", (atom, low, high))


def _render(node: _Node, rng: random.Random, out: list[str]) -> None:
    kind, value = node
    if kind == "lit":
        out.append(value)
    elif kind == "set":
        out.append(rng.choice(value))
    elif kind == "seq":
        for item in value:
            _render(item, rng, out)
    elif kind == "alt":
        _render(rng.choice(value), rng, out)
    else:
        atom, low, high = value
        for _ in range(rng.randint(low, high)):
            _render(atom, rng, out)


_PATTERNS: dict[str, _Node] = {}


def sample_pattern(pattern: str, rng: random.Random) -> str:
    """A string matching ``pattern`` (the subset of regular expressions contracts use)."""
    node = _PATTERNS.get(pattern)
    if node is None:
        node = _PATTERNS[pattern] = _PatternParser(pattern).parse()
    out: list[str] = []
    _render(node, rng, out)
    return "".join(out)
