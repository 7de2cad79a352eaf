"""What an accepted contract is: the parsed document with its identity, and its semantic version.

:func:`~services.catalog.contracts.odcs.parse_contract` makes a :class:`ParsedContract`;
:mod:`.derive` and the catalog read it. It lives below both so that imports run one way.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from open_data_contract_standard.model import OpenDataContractStandard

# semver.org's recommended expression, anchored, without a leading "v".
_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<prerelease>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


# --- semantic versions ---------------------------------------------------------------------


@functools.total_ordering
@dataclass(frozen=True)
class SemanticVersion:
    """A SemVer 2.0.0 version, ordered by SemVer precedence (build metadata is ignored).

    Equality follows precedence too, so ``1.0.0+build.1 == 1.0.0``: two contract versions that
    differ only in build metadata are the same version to the catalog.
    """

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> SemanticVersion:
        """Parse ``text`` or raise :class:`ValueError` saying what a semantic version looks like."""
        match = _SEMVER.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0 or 2.0.0-rc.1)"
            )
        prerelease = match["prerelease"]
        return cls(
            major=int(match["major"]),
            minor=int(match["minor"]),
            patch=int(match["patch"]),
            prerelease=tuple(prerelease.split(".")) if prerelease else (),
            build=match["build"] or "",
        )

    def _precedence(self) -> tuple[Any, ...]:
        # SemVer §11: a release ranks above its pre-releases; numeric identifiers compare as
        # numbers and rank below alphanumeric ones; a longer pre-release wins when the rest tie.
        identifiers = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, not self.prerelease, identifiers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self._precedence() == other._precedence()

    def __hash__(self) -> int:
        return hash(self._precedence())

    def __lt__(self, other: SemanticVersion) -> bool:
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self._precedence() < other._precedence()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as ``left`` ranks below, equal to or above ``right`` by SemVer precedence."""
    a, b = SemanticVersion.parse(left), SemanticVersion.parse(right)
    return (a > b) - (a < b)


# --- the parsed contract -------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedContract:
    """An accepted contract: the document as submitted, its ODCS model, and what identifies it.

    ``raw`` is kept exactly as submitted (parsed to JSON data) for storage and must be treated as
    read-only. Two parsed contracts are equal when their fingerprints (and identity) are.
    """

    raw: dict[str, Any] = field(compare=False, repr=False)
    model: OpenDataContractStandard = field(compare=False, repr=False)
    id: str
    version: str
    """The contract's semantic version as written, e.g. ``1.2.0`` (see :attr:`semantic_version`)."""
    api_version: str
    fingerprint: str
    """sha256 (hex) of the canonical JSON of ``raw``: equal documents, equal fingerprints."""

    @property
    def semantic_version(self) -> SemanticVersion:
        return SemanticVersion.parse(self.version)


def fingerprint_of(raw: dict[str, Any]) -> str:
    """sha256 of ``raw`` as canonical JSON: sorted keys, no insignificant whitespace, UTF-8."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
