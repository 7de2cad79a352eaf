"""The catalog's unit-test fixture; the world it builds lives in tests/support/catalog_units.py."""

from tests.support.catalog_units import catalog

__all__ = ["catalog"]
