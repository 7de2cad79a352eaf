"""Fixtures shared by the contract tests."""

from __future__ import annotations

import warnings
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def gx() -> ModuleType:
    """Great Expectations, imported once; its own imports use modules Python deprecates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations

    return great_expectations
