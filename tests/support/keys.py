"""API keys in tests: the first admin key of a fresh catalog, and waiting until a key works.

A key a catalog issues reaches every service's key ring through platform.catalog, within a second
or so; a test that uses it at once waits for it here, where it is checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.catalog.principals import service as principals_service
from services.catalog.runtime import CatalogRuntime
from services.common import db
from services.common.app import Runtime
from services.common.problems import Unauthenticated
from services.common.worker import wait_until


def bootstrap_admin(catalog: Runtime) -> str:
    """The admin key of a catalog whose database has no principal yet."""
    with db.unit_of_work(catalog.sessions) as session:
        issued = principals_service.bootstrap_admin(session, events=catalog.service_as(CatalogRuntime).events)
    assert issued is not None
    return issued.key


def authenticates(keyrings: Iterable[Any], key: str) -> bool:
    """Whether every key ring knows ``key``."""
    try:
        for keyring in keyrings:
            keyring.authenticate(key)
    except Unauthenticated:
        return False
    return True


def wait_for_key(keyrings: Iterable[Any], key: str, timeout_s: float, failure: str) -> None:
    """Until every key ring knows ``key``; fails with ``failure`` after ``timeout_s``."""
    rings = list(keyrings)
    assert wait_until(lambda: authenticates(rings, key), timeout_s), failure
