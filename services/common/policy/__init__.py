"""The grant policy: what a scenario may see of a record, as a pure function compiled per grant.

Feeds compile one :class:`Policy` per grant version and call :attr:`Policy.apply` on every record
they deliver; the catalog uses :meth:`FieldMask.from_value`, :func:`parse_masking_path` and
:func:`parse_row_filter` (with the contract's field names) to check a grant before approving it. No I/O, no database, no bus: the standard library only.

    terms = GrantTerms.from_event(event_data)
    policy = compile_policy(terms, hash_key=hash_key_of(event_data))  # the grant's own random key
    visible = policy.apply(record)          # None when the row filter drops the record

Masking rules are in :mod:`services.common.policy.masking`, the row filter language in
:mod:`services.common.policy.row_filter` (its syntax in :mod:`.row_filter_syntax`).
"""

from services.common.policy.grant import (
    GrantTerms,
    Policy,
    compile_policy,
    encode_hash_key,
    hash_key_of,
    new_hash_key,
)
from services.common.policy.masking import (
    HASH_HEX_CHARS,
    HASH_PREFIX,
    FieldMask,
    MaskingKind,
    canonical_json,
    parse_masking_path,
)
from services.common.policy.row_filter import RowFilter, parse_row_filter
from services.common.policy.row_filter_syntax import MAX_DEPTH, MAX_LIST_ITEMS, MAX_TEXT, RowFilterError

__all__ = [
    "HASH_HEX_CHARS",
    "HASH_PREFIX",
    "MAX_DEPTH",
    "MAX_LIST_ITEMS",
    "MAX_TEXT",
    "FieldMask",
    "GrantTerms",
    "MaskingKind",
    "Policy",
    "RowFilter",
    "RowFilterError",
    "canonical_json",
    "compile_policy",
    "encode_hash_key",
    "hash_key_of",
    "new_hash_key",
    "parse_masking_path",
    "parse_row_filter",
]
