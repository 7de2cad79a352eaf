"""Masking of the example values kept as evidence, by the contract's rule for each field.

Evidence never shows a sensitive value in a form its reader could reverse, whichever rule or key
shape produced it. The rules are the contract's (``sensitive_fields``: path ->
``{kind, keep_prefix, keep_suffix, precision}``): ``hash`` an HMAC-SHA256 under quality's evidence
key (:func:`evidence_key`), which no reader ever sees, so a token cannot be checked against guesses
however small the space of values; ``partial`` the kept ends; ``generalize`` a rounded number or a
cut text; anything else (``redact``) a fixed mark. A value that spans several columns (an example
of a multi-column rule, a composite primary key) is masked column by column with each column's
rule; one whose shape does not name its columns is redacted whole if any of them is sensitive.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

REDACTED = "***"
HASH_PREFIX = "hmac:"


def evidence_key(configured: str | None) -> bytes:
    """The key of evidence hashes: the configured secret, else a random one for this process.

    Without a configured secret, tokens are stable for the life of the process (repeats of a value
    within and across windows still compare) and nobody, operators included, can recompute them.
    """
    if configured:
        return configured.encode()
    return secrets.token_bytes(32)


def mask(value: Any, rule: Mapping[str, Any] | None, key: bytes) -> Any:
    """``value`` as evidence may show it; None stays None (a null is not a secret)."""
    if rule is None or value is None:
        return value
    kind = str(rule.get("kind") or "redact")
    text = value if isinstance(value, str) else str(value)
    if kind == "hash":
        return HASH_PREFIX + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:16]
    if kind == "partial":
        prefix = int(rule.get("keep_prefix") or 0)
        suffix = int(rule.get("keep_suffix") or 0)
        if prefix + suffix >= len(text):
            return "*" * len(text)
        return (
            text[:prefix]
            + "*" * (len(text) - prefix - suffix)
            + (text[len(text) - suffix :] if suffix else "")
        )
    if kind == "generalize":
        precision = int(rule.get("precision") or 0)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return round(float(value), precision)
        return text[: max(precision, 1)] + "…"
    return REDACTED


def field_rule(sensitive_fields: Mapping[str, Any], column: str | None) -> Mapping[str, Any] | None:
    if column is None:
        return None
    rule = sensitive_fields.get(column)
    return rule if isinstance(rule, Mapping) else ({"kind": "redact"} if rule is not None else None)


def mask_across(value: Any, columns: Sequence[str], sensitive_fields: Mapping[str, Any], key: bytes) -> Any:
    """``value`` read from ``columns`` (one column or several), masked column by column.

    A mapping is masked by the rule of each of its keys; a list or tuple as long as ``columns`` by
    the rule of the column at its position; a scalar of a single column by that column's rule.
    Any other shape is redacted whole when one of ``columns`` is sensitive: evidence that cannot
    say which part is which shows nothing.
    """
    rules = [field_rule(sensitive_fields, column) for column in columns]
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {
            name: mask(part, field_rule(sensitive_fields, str(name)), key) for name, part in value.items()
        }
    if all(rule is None for rule in rules):
        return value
    if isinstance(value, (list, tuple)) and len(value) == len(columns) and len(columns) > 1:
        return [mask(part, rule, key) for part, rule in zip(value, rules, strict=True)]
    if len(columns) == 1 and not isinstance(value, (list, tuple)):
        return mask(value, rules[0], key)
    return REDACTED
