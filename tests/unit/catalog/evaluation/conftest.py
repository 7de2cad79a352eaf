"""The evaluation's unit-test fixture; the world it builds lives in tests/support/evaluation_units.py."""

from tests.support.evaluation_units import world

__all__ = ["world"]
