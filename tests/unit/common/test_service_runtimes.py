"""What a service builds in its lifespan is one typed runtime with a key ring, never a bag of
objects read back by string keys (services/common/app.py says the shape)."""

from __future__ import annotations

import ast
import dataclasses
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citybase.platform import SERVICE_FACTORIES
from services.catalog.runtime import CatalogRuntime
from services.common.app import Runtime, ServiceRuntime, ServiceSpec, build_service_app
from services.common.auth import KeyRing, PrincipalDep
from services.common.problems import ServiceUnavailable
from services.feeds.runtime import FeedsRuntime
from services.ingest.runtime import IngestRuntime
from services.quality.runtime import QualityRuntime
from tests.factories import embedded_settings

ROOT = Path(__file__).resolve().parents[3]
RUNTIMES: dict[str, type[ServiceRuntime]] = {
    "catalog": CatalogRuntime,
    "feeds": FeedsRuntime,
    "ingest": IngestRuntime,
    "quality": QualityRuntime,
}


def test_every_service_has_a_typed_runtime() -> None:
    assert set(RUNTIMES) == set(SERVICE_FACTORIES)


@pytest.mark.parametrize("kind", [ServiceRuntime, *RUNTIMES.values()], ids=lambda kind: kind.__name__)
def test_a_runtime_cannot_be_built_without_a_key_ring(kind: type[ServiceRuntime]) -> None:
    """Authentication reads the key ring from the typed runtime: it is a required field of each."""
    assert issubclass(kind, ServiceRuntime)
    fields = {field.name: field for field in dataclasses.fields(kind)}
    assert "keyring" in fields
    keyring = fields["keyring"]
    assert keyring.default is dataclasses.MISSING and keyring.default_factory is dataclasses.MISSING
    assert typing.get_type_hints(kind)["keyring"] is KeyRing
    with pytest.raises(TypeError, match="keyring"):
        kind()  # type: ignore[call-arg]


@pytest.mark.parametrize("service", sorted(RUNTIMES))
def test_a_started_service_holds_its_typed_runtime(service: str, tmp_path: Path) -> None:
    app = SERVICE_FACTORIES[service](embedded_settings(tmp_path))
    with TestClient(app):
        runtime: Runtime = app.state.runtime
        typed = runtime.service_as(RUNTIMES[service])
        assert runtime.service is typed and isinstance(typed.keyring, KeyRing)
    with pytest.raises(ServiceUnavailable):
        runtime.service_as(next(kind for name, kind in RUNTIMES.items() if name != service))


def test_authentication_uses_the_key_ring_the_lifespan_yields(tmp_path: Path) -> None:
    ring = KeyRing()

    @asynccontextmanager
    async def lifespan(runtime: Runtime) -> AsyncIterator[ServiceRuntime]:
        yield ServiceRuntime(keyring=ring)

    spec = ServiceSpec(name="probe", title="probe", description="probe", lifespan=lifespan)
    app = build_service_app(spec, embedded_settings(tmp_path))

    @app.get("/me")
    async def me(principal: PrincipalDep) -> str:
        return principal.id

    seen: list[str] = []
    original = ring.authenticate

    def authenticate(key: str) -> typing.Any:
        seen.append(key)
        return original(key)

    ring.authenticate = authenticate  # type: ignore[method-assign]
    with TestClient(app) as client:
        assert client.get("/me", headers={"Authorization": "Bearer cbk_0badc0de_secret"}).status_code == 401
    assert seen == ["cbk_0badc0de_secret"]


def string_keyed_lookups(source: str) -> list[int]:
    """Lines that read anything named ``state`` by a string key (``x["k"]``, ``x.state.get("k")``),
    fill an attribute ``state`` by name, or reach for a ``runtime.state`` bag at all."""
    found: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"get", "setdefault", "pop", "update"}
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "state"
            and (
                node.keywords
                or any(isinstance(arg, ast.Constant) and isinstance(arg.value, str) for arg in node.args)
            )
        ):
            found.add(node.lineno)
        elif isinstance(node, ast.Subscript):
            target = node.value
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
            if name == "state" and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                found.add(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "state":
            owner = node.value
            owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if owner_name is not None and owner_name.endswith("runtime"):
                found.add(node.lineno)
    return sorted(found)


def test_the_scan_sees_every_way_a_runtime_was_read_by_name() -> None:
    source = (
        "a = runtime.state['ingestor']\n"
        "b = app.state.runtime.state.get('keyring')\n"
        "self.runtime.state.update(events=events)\n"
        "state = {'id': 1}\n"
        "c = state['id']\n"
        "d = request.app.state.runtime\n"
        "e = runtime.service_as(IngestRuntime).ingestor\n"
        "f = catalog.state.get('audit_refusals')\n"
        "self.state.pop(message.key, None)\n"
    )
    assert string_keyed_lookups(source) == [1, 2, 3, 5, 8]


def test_no_module_reads_a_runtime_by_string_key() -> None:
    sources = [
        path for folder in ("services", "citybase", "tests") for path in sorted((ROOT / folder).rglob("*.py"))
    ]
    assert len(sources) > 100
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sources
        for line in string_keyed_lookups(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "use the service's typed runtime (services/common/app.py):\n" + "\n".join(found)
