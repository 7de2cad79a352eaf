"""FastAPI dependencies every service shares, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from services.common import db
from services.common.app import Runtime, ServiceRuntimeT
from services.common.bus import Bus
from services.common.i18n import N_, Sentence
from services.common.problems import ServiceUnavailable
from services.common.settings import Settings


# The dependencies that only read memory are ``async``: FastAPI runs a sync dependency in a
# worker thread, a hop each that every request would pay.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ServiceUnavailable(Sentence(N_("the service is starting")))
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def get_bus(runtime: RuntimeDep) -> Bus:
    return runtime.bus


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One unit of work per request, committed before the response is sent."""
    with db.unit_of_work(runtime.sessions) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
BusDep = Annotated[Bus, Depends(get_bus)]
# scope="function": commit before the response leaves, so a 2xx always means committed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def service_runtime(kind: type[ServiceRuntimeT]) -> Callable[[Runtime], Awaitable[ServiceRuntimeT]]:
    """The dependency that hands out a service's typed runtime (``IngestRuntime``, ...)."""

    async def get_service_runtime(runtime: RuntimeDep) -> ServiceRuntimeT:
        return runtime.service_as(kind)

    return get_service_runtime
