"""The feeds service's app: ``create_app(settings)`` builds it, its lifespan owns its workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.common.app import InfrastructureProvider, Runtime, ServiceSpec, build_service_app
from services.common.outbox import Outbox, OutboxRelay
from services.common.settings import Settings
from services.feeds.models import outbox

NAME = "feeds"


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
    title="citybase feeds",
    description=(
        "Authorized, masked delivery out: scenario builders subscribe to granted datasets over long-poll, Server-Sent Events or webhooks; every batch checks the grant, applies its masking and is metered."
    ),
    migrations=Path(__file__).parent / "migrations",
    lifespan=lifespan,
)


def create_app(settings: Settings, *, infrastructure: InfrastructureProvider | None = None) -> FastAPI:
    return build_service_app(SPEC, settings, infrastructure=infrastructure)
