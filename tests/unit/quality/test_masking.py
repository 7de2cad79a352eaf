"""Evidence never shows a sensitive value in clear."""

from __future__ import annotations

from services.quality.masking import REDACTED, field_rule, mask


def test_each_masking_kind() -> None:
    assert mask("13812345678", {"kind": "partial", "keep_prefix": 3, "keep_suffix": 4}) == "138****5678"
    hashed = mask("P123456789", {"kind": "hash"})
    assert hashed.startswith("sha256:") and "P123456789" not in hashed
    assert hashed == mask("P123456789", {"kind": "hash"})  # stable, so examples still compare
    assert mask(31.23456, {"kind": "generalize", "precision": 2}) == 31.23
    assert mask("secret", {"kind": "redact"}) == REDACTED
    assert mask("ab", {"kind": "partial", "keep_prefix": 3, "keep_suffix": 4}) == "**"
    assert mask(None, {"kind": "hash"}) is None
    assert mask("open", None) == "open"


def test_the_rule_of_a_field() -> None:
    fields = {"patient_id": {"kind": "hash"}, "odd": "yes"}
    assert field_rule(fields, "patient_id") == {"kind": "hash"}
    assert field_rule(fields, "odd") == {"kind": "redact"}
    assert field_rule(fields, "clinic") is None
    assert field_rule(fields, None) is None
