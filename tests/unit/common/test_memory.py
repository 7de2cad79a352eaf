"""The process bounds glibc's malloc arenas where the C library is glibc, and says so."""

from __future__ import annotations

import ctypes
import platform

import pytest

from services.common import memory
from services.common.settings import Settings


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_bound() -> None:
    assert memory.bound_malloc_arenas(Settings().malloc_arenas)


def test_a_c_library_without_mallopt_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoMallopt:
        def __init__(self, _name: str | None) -> None:
            pass

        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert memory.bound_malloc_arenas(2) is False


def test_at_least_one_arena() -> None:
    with pytest.raises(ValueError):
        memory.bound_malloc_arenas(0)
    assert Settings().malloc_arenas == memory.DEFAULT_ARENAS
