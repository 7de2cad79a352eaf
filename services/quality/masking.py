"""Masking of the example values kept as evidence, by the contract's rule for the field.

Evidence is read by operators and owners, not by the scenario a grant was made for; it still never
shows a sensitive value in clear. The rules are the contract's (``sensitive_fields``: path ->
``{kind, keep_prefix, keep_suffix, precision}``): ``hash`` a short SHA-256, ``partial`` the kept
ends, ``generalize`` a rounded number or a cut text, anything else (``redact``) a fixed mark.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

REDACTED = "***"


def mask(value: Any, rule: Mapping[str, Any] | None) -> Any:
    """``value`` as evidence may show it; None stays None (a null is not a secret)."""
    if rule is None or value is None:
        return value
    kind = str(rule.get("kind") or "redact")
    text = value if isinstance(value, str) else str(value)
    if kind == "hash":
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]
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
