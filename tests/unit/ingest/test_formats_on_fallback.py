"""The jsonschema fallback validator checks formats on strings only, as JSON Schema says."""

from __future__ import annotations

from services.ingest.validation import _format_checker


def test_a_null_in_an_optional_date_time_field_is_not_a_format_error() -> None:
    checker = _format_checker()
    assert checker.conforms(None, "date-time")
    assert checker.conforms(42, "date")
    assert checker.conforms("2026-11-24T08:15:30Z", "date-time")
    assert not checker.conforms("yesterday", "date-time")
