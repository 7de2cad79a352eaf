"""Ingest's unit-test fixtures; what they build lives in tests/support/ingest_units.py."""

from tests.support.ingest_units import kit, projection, settings

__all__ = ["kit", "projection", "settings"]
