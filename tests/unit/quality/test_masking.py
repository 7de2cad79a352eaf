"""Evidence never shows a sensitive value in clear."""

from __future__ import annotations

import hashlib

from services.quality.masking import REDACTED, evidence_key, field_rule, mask, mask_across

KEY = evidence_key(None)


def test_each_masking_kind() -> None:
    assert mask("13812345678", {"kind": "partial", "keep_prefix": 3, "keep_suffix": 4}, KEY) == "138****5678"
    hashed = mask("P123456789", {"kind": "hash"}, KEY)
    assert hashed.startswith("hmac:") and "P123456789" not in hashed
    assert hashed == mask("P123456789", {"kind": "hash"}, KEY)  # stable, so examples still compare
    # Keyed: without the key, the token cannot be recomputed from a guess.
    assert hashlib.sha256(b"P123456789").hexdigest()[:16] not in hashed
    assert hashed != mask("P123456789", {"kind": "hash"}, evidence_key(None))
    assert mask(31.23456, {"kind": "generalize", "precision": 2}, KEY) == 31.23
    assert mask("secret", {"kind": "redact"}, KEY) == REDACTED
    assert mask("ab", {"kind": "partial", "keep_prefix": 3, "keep_suffix": 4}, KEY) == "**"
    assert mask(None, {"kind": "hash"}, KEY) is None
    assert mask("open", None, KEY) == "open"


def test_a_value_of_several_columns_is_masked_column_by_column() -> None:
    fields = {"patient_id": {"kind": "hash"}, "phone": {"kind": "redact"}}
    pair = mask_across(("cardiology", "P123456789"), ("clinic", "patient_id"), fields, KEY)
    assert pair[0] == "cardiology" and pair[1] == mask("P123456789", {"kind": "hash"}, KEY)
    row = mask_across({"clinic": "eye", "phone": "13812345678"}, ("clinic", "phone"), fields, KEY)
    assert row == {"clinic": "eye", "phone": REDACTED}
    assert mask_across("P123456789|eye", ("patient_id", "clinic"), fields, KEY) == REDACTED
    assert mask_across(("a", "b"), ("clinic", "ward"), fields, KEY) == ("a", "b")


def test_the_rule_of_a_field() -> None:
    fields = {"patient_id": {"kind": "hash"}, "odd": "yes"}
    assert field_rule(fields, "patient_id") == {"kind": "hash"}
    assert field_rule(fields, "odd") == {"kind": "redact"}
    assert field_rule(fields, "clinic") is None
    assert field_rule(fields, None) is None
