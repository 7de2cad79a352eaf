"""A grant's terms and the compiled policy feeds apply to every record delivered under it."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from services.common.policy.masking import (
    REMOVED,
    FieldMask,
    InlineMask,
    MaskFunction,
    PathStep,
    compile_masks,
    inline_mask,
    mask_function,
    may_remove,
    parse_masking_path,
    string_hash,
)
from services.common.policy.row_filter import RowFilter, parse_row_filter
from services.common.policy.specialized import Apply, ApplyMany, FieldStep, specialize

HASH_KEY_BYTES = 32
"""A grant's hash key: 256 random bits, made by the catalog when the grant is created."""


@dataclass(frozen=True)
class GrantTerms:
    """What one version of a grant lets a scenario see of a dataset's records."""

    grant_id: str
    version: int
    scenario_id: str
    dataset_id: str
    fields: tuple[str, ...]
    """Top-level record fields the scenario may see."""
    masking: Mapping[str, FieldMask] = field(default_factory=dict)
    """Masks by field path: ``a``, ``a.b``, ``a[].b`` (as the contract names nested properties)."""
    row_filter: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "masking", MappingProxyType(dict(self.masking)))

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> GrantTerms:
        """The terms of a grant event payload on ``platform.catalog``; ValueError naming the bad key.

        ``{"id", "version", "scenario_id", "dataset_id", "fields": [...], "masking": {path: rule},
        "row_filter": str | None, ...}``; other keys (state, expiry, quota) are not terms of what
        a record looks like and are ignored here.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a grant event's data is an object")
        text: dict[str, str] = {}
        for key in ("id", "scenario_id", "dataset_id"):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise ValueError(f"grant {key} must be a non-empty string, not {value!r}")
            text[key] = value
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ValueError(f"grant version must be a non-negative integer, not {version!r}")
        fields = data.get("fields")
        if not isinstance(fields, list | tuple) or not all(isinstance(name, str) and name for name in fields):
            raise ValueError("grant fields must be a list of field names")
        masking_value = data.get("masking") or {}
        if not isinstance(masking_value, Mapping):
            raise ValueError("grant masking must be an object of masking rules by field path")
        masking: dict[str, FieldMask] = {}
        for path, rule in masking_value.items():
            try:
                parse_masking_path(path)
                masking[path] = FieldMask.from_value(rule)
            except ValueError as error:
                raise ValueError(f"grant masking[{path!r}]: {error}") from None
        row_filter = data.get("row_filter")
        if row_filter is not None and not isinstance(row_filter, str):
            raise ValueError("grant row_filter must be a string or null")
        return cls(
            grant_id=text["id"],
            version=version,
            scenario_id=text["scenario_id"],
            dataset_id=text["dataset_id"],
            fields=tuple(dict.fromkeys(fields)),
            masking=masking,
            row_filter=row_filter or None,
        )


def new_hash_key() -> bytes:
    """A new grant's key of its ``hash`` masks: random, so that nothing public (a scenario or grant
    id, a dataset, the code) lets anyone compute it, and hence nobody but the platform can hash a
    guessed value and compare it with what was delivered."""
    return secrets.token_bytes(HASH_KEY_BYTES)


def encode_hash_key(key: bytes) -> str:
    """A hash key as the grant event on ``platform.catalog`` carries it (base64url, no padding)."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def hash_key_of(data: Mapping[str, Any]) -> bytes | None:
    """The hash key of a grant event payload (``hash_key``), or None when it carries none (an event
    written before grants had keys); ValueError when it is not a key."""
    text = data.get("hash_key")
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("grant hash_key must be base64url text")
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("grant hash_key must be base64url text") from None
    if len(key) != HASH_KEY_BYTES:
        raise ValueError(f"grant hash_key must be {HASH_KEY_BYTES} bytes, not {len(key)}")
    return key


def _no_hash(value: Any) -> Any:
    return None if value is None else REMOVED


class Policy:
    """A grant compiled for delivery: :attr:`apply` turns a record into what the scenario may see.

    Built by :func:`compile_policy` once per grant version; everything that does not depend on
    the record (field list, mask functions, hash key schedule, filter closures) is done there,
    and the grant's terms are written out as one function (:mod:`.specialized`).
    The output shares unmasked values with the input record (no deep copy): serialize it, do not
    change it in place.
    """

    __slots__ = ("apply", "apply_many", "row_filter", "terms")

    apply: Apply
    """The record as the grant lets the scenario see it, or None when the row filter drops it.

    Only granted fields present in the record come out (in the grant's order), masked as the
    grant says; the row filter reads the original record, before any mask is computed.
    """
    apply_many: ApplyMany
    """:attr:`apply` over records, leaving out those the row filter drops."""

    def __init__(
        self,
        terms: GrantTerms,
        steps: tuple[FieldStep, ...],
        row_filter: RowFilter | None,
    ) -> None:
        self.terms = terms
        self.row_filter = row_filter
        self.apply, self.apply_many = specialize(steps, row_filter)

    def __repr__(self) -> str:
        return f"Policy(grant={self.terms.grant_id!r}, version={self.terms.version})"


def compile_policy(terms: GrantTerms, *, hash_key: bytes | None) -> Policy:
    """Compile ``terms`` with the grant's ``hash_key`` (:func:`new_hash_key`, from the grant event).

    Without a key (None: a grant announced before grants had keys) a ``hash`` mask cannot be
    computed and removes the value instead, as ``redact`` does: never a value in clear, never a
    hash anyone could recompute. Raises :class:`ValueError` for a malformed masking path or rule
    or an empty key and :class:`~services.common.policy.row_filter.RowFilterError` for a row
    filter that does not parse. Masks on fields the grant does not include have nothing to do and
    are left out.
    """
    keyed = string_hash(hash_key) if hash_key is not None else None
    hash_value = keyed.mask if keyed is not None else _no_hash
    granted = dict.fromkeys(terms.fields)
    masks: dict[tuple[PathStep, ...], MaskFunction] = {}
    removing: set[str] = set()
    inline: dict[str, InlineMask | None] = {}
    for path, rule in terms.masking.items():
        steps = parse_masking_path(path)
        if steps[0][0] in granted:
            mask = FieldMask.from_value(rule)
            masks[steps] = function = mask_function(mask, hash_value)
            if may_remove(steps, mask, keyed=hash_key is not None):
                removing.add(steps[0][0])
            if steps == ((steps[0][0], 0),):
                inline[steps[0][0]] = inline_mask(mask, function, keyed)
    by_field = compile_masks(masks)
    row_filter = parse_row_filter(terms.row_filter) if terms.row_filter else None
    fields = tuple(
        (name, by_field.get(name), name in removing, _alone(inline, by_field, name)) for name in granted
    )
    return Policy(terms, fields, row_filter)


def _alone(
    inline: Mapping[str, InlineMask | None], by_field: Mapping[str, MaskFunction], name: str
) -> InlineMask | None:
    """The written-out form of ``name``'s mask when it is the field's only one (no nested path
    adds to it), else None: the compiled function of a field with several masks is called."""
    form = inline.get(name)
    return form if form is not None and by_field[name] is form.mask else None
