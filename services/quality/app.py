"""The quality service's app: ``create_app(settings)`` builds it, its lifespan owns its workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.common.app import InfrastructureProvider, Runtime, ServiceSpec, build_service_app
from services.common.outbox import Outbox, OutboxRelay
from services.common.settings import Settings
from services.quality.models import outbox

NAME = "quality"


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
    title="citybase quality",
    description=(
        "Quality and utilization scores per dataset, department and scenario, from windows of the live stream and from delivery metering."
    ),
    migrations=Path(__file__).parent / "migrations",
    lifespan=lifespan,
)


def create_app(settings: Settings, *, infrastructure: InfrastructureProvider | None = None) -> FastAPI:
    return build_service_app(SPEC, settings, infrastructure=infrastructure)
