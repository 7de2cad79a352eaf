"""The catalog service's app: ``create_app(settings)`` builds it, its lifespan owns its workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.catalog.models import outbox
from services.common.app import InfrastructureProvider, Runtime, ServiceSpec, build_service_app
from services.common.outbox import Outbox, OutboxRelay
from services.common.settings import Settings

NAME = "catalog"


@asynccontextmanager
async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
    relay = OutboxRelay(Outbox(outbox), runtime.engine, runtime.bus, name=NAME)
    runtime.state["outbox"] = relay
    runtime.add_readiness_check("outbox", lambda: relay.last_error)
    relay.start()
    try:
        yield
    finally:
        relay.stop()


SPEC = ServiceSpec(
    name=NAME,
    title="citybase catalog",
    description=(
        "The system of record of the city's data: datasets, ODCS contracts and their versions, principals and API keys, scenarios, grants and the audit trail. Every change is published on `platform.catalog`."
    ),
    migrations=Path(__file__).parent / "migrations",
    lifespan=lifespan,
)


def create_app(settings: Settings, *, infrastructure: InfrastructureProvider | None = None) -> FastAPI:
    return build_service_app(SPEC, settings, infrastructure=infrastructure)
