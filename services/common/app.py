"""The app factory every service uses: lifespan, health, readiness, metrics, problem errors.

A service describes itself with a :class:`ServiceSpec` (its name, routers, migrations and its own
start-up work such as consumers and read models) and its ``create_app(settings)`` calls
:func:`build_service_app`. The heavy resources (database engine, bus) are built in the lifespan
and closed there, or, when several services run in one process (``citybase up``), shared through
:class:`Infrastructure`, which the composing process owns.

What a running service holds comes in two typed parts, never a bag of objects read back by name:

- :class:`Runtime`, built by the kernel, holds what every service shares: its name, settings,
  database engine and sessions, bus, metrics and readiness checks. ``app.state.runtime`` is it.
- a :class:`ServiceRuntime` subclass per service (``CatalogRuntime``, ``IngestRuntime``,
  ``FeedsRuntime``, ``QualityRuntime``, each in ``services/<service>/runtime.py``) holds what the
  service builds for itself: its read model, its service objects, its workers. The service's
  lifespan builds it and *yields* it; the kernel keeps it as ``Runtime.service``. The key ring
  every service authenticates with is a required field of :class:`ServiceRuntime`, so a lifespan
  that builds no key ring does not type-check, and :func:`services.common.auth.get_principal`
  finds it in one place for every service.

Route dependencies reach the typed part through one ``Annotated`` alias per service, made with
:func:`services.common.deps.service_runtime` (``IngestRuntimeDep``, ``FeedsRuntimeDep``, ...);
code holding the app reads ``app.state.runtime.service_as(IngestRuntime)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from services.common import db
from services.common.api_docs import install_api_docs
from services.common.auth import KeyRing
from services.common.bus import BufferFull, Bus, BusUnavailable, bus_from_url
from services.common.i18n import N_, Sentence
from services.common.limits import HeaderLimits
from services.common.memory import bound_malloc_arenas
from services.common.metrics import ServiceMetrics, install_http_metrics
from services.common.problems import (
    PROBLEM_RESPONSES,
    ServiceUnavailable,
    TooManyRequests,
    install_problem_handlers,
    request_problem,
)
from services.common.settings import Settings
from services.common.storable import NulGuard, install_storable_handlers

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], str | None]
"""Returns None when ready, else a short reason. Runs in a worker thread."""


@dataclass
class Infrastructure:
    """The database engine and bus of one process."""

    engine: Engine
    bus: Bus

    @classmethod
    def open(cls, settings: Settings, *, client_id: str = "citybase") -> Infrastructure:
        settings.ensure_data_dir()
        return cls(
            db.create_db_engine(settings.database_url), bus_from_url(settings.bus_url, client_id=client_id)
        )

    def close(self) -> None:
        self.bus.close()
        self.engine.dispose()


@dataclass(kw_only=True)
class ServiceRuntime:
    """What one service builds in its lifespan, subclassed by each service with its own parts.

    Every service authenticates its callers against the principals and key hashes it reads from
    ``platform.catalog``: the key ring is therefore required here, not left for each service to
    remember."""

    keyring: KeyRing


ServiceRuntimeT = TypeVar("ServiceRuntimeT", bound=ServiceRuntime)


@dataclass
class Runtime:
    """What a running service hands to its dependencies and workers: the parts every service
    shares, and in :attr:`service` the typed part its own lifespan built."""

    name: str
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    bus: Bus
    metrics: ServiceMetrics
    readiness: list[tuple[str, ReadinessCheck]] = field(default_factory=list)
    service: ServiceRuntime | None = None
    """What the service's lifespan yielded; None until its start-up has run."""

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        self.readiness.append((name, check))

    def service_as(self, kind: type[ServiceRuntimeT]) -> ServiceRuntimeT:
        """The service's own typed runtime; 503 while the service is starting."""
        if not isinstance(self.service, kind):
            raise ServiceUnavailable(Sentence(N_("the service is starting")))
        return self.service


ServiceLifespan = Callable[[Runtime], AbstractAsyncContextManager[ServiceRuntime]]
"""Builds and starts what a service runs, yields its typed runtime, and stops it all on exit."""


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    routers: Sequence[APIRouter] = ()
    migrations: Path | None = None
    lifespan: ServiceLifespan | None = None
    openapi_tags: Sequence[dict[str, str]] = ()
    configure: Callable[[FastAPI, Runtime], None] | None = None
    scan_json_bodies: bool = True
    """Refuse a NUL in a JSON body before a route reads it (a service that streams its bodies and
    stores none of their text, as ingest, turns it off)."""

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"


InfrastructureProvider = Callable[[], Infrastructure]
"""Hands a service the infrastructure of the process that composes several services."""


def build_service_app(
    spec: ServiceSpec, settings: Settings, *, infrastructure: InfrastructureProvider | None = None
) -> FastAPI:
    """The FastAPI app of one service.

    Alone, the app opens and closes its own database engine and bus in its lifespan; composed
    with others (``citybase up``), ``infrastructure`` hands it the ones the process owns.
    """
    metrics = ServiceMetrics(spec.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.monotonic()
        bound_malloc_arenas(settings.malloc_arenas)  # process-wide, before the threads come
        owned = infrastructure is None
        if infrastructure is not None:
            infra = infrastructure()
        else:
            infra = await asyncio.to_thread(Infrastructure.open, settings, client_id=f"citybase-{spec.name}")
        try:
            if settings.migrate_on_start and spec.migrations is not None:
                await asyncio.to_thread(
                    db.migrate, settings.database_url, spec.migrations, spec.version_table, infra.engine
                )
            runtime = Runtime(
                name=spec.name,
                settings=settings,
                engine=infra.engine,
                sessions=db.session_factory(infra.engine),
                bus=infra.bus,
                metrics=metrics,
            )
            app.state.runtime = runtime
            if spec.lifespan is None:
                async with _announced_when_ready(runtime, started):
                    yield
            else:
                async with spec.lifespan(runtime) as service, _announced_when_ready(runtime, started):
                    runtime.service = service
                    yield
        finally:
            if owned:
                await asyncio.to_thread(infra.close)

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="0.1.0",
        lifespan=lifespan,
        openapi_tags=list(spec.openapi_tags) or None,
        responses=PROBLEM_RESPONSES,
        # FastAPI's pages load Swagger UI and ReDoc from a CDN; install_api_docs serves our own
        docs_url=None,
        redoc_url=None,
    )
    install_api_docs(app)
    app.state.spec = spec
    app.state.metrics = metrics
    install_problem_handlers(app)
    _install_infrastructure_handlers(app)
    install_storable_handlers(app)
    app.add_middleware(NulGuard, scan_json_bodies=spec.scan_json_bodies)
    install_http_metrics(app, metrics)
    # Outermost: a head too large is refused before anything, metrics included, reads it.
    app.add_middleware(HeaderLimits)
    app.include_router(_operations_router(spec.name))
    for router in spec.routers:
        app.include_router(router)
    return app


READY_ANNOUNCE_POLL_S = 0.25
READY_WARN_AFTER_S = 60.0


@asynccontextmanager
async def _announced_when_ready(runtime: Runtime, started: float) -> AsyncIterator[None]:
    """Logs one line when the service first passes its readiness checks (and one warning naming
    the failing checks if that takes longer than a minute); stops watching once it has said so."""

    async def watch() -> None:
        warned = False
        while True:
            checks = await asyncio.to_thread(_run_checks, runtime)
            failed = {name: reason for name, reason in checks.items() if reason != "ok"}
            elapsed = time.monotonic() - started
            if not failed:
                log.info("%s ready in %.1f s", runtime.name, elapsed)
                return
            if elapsed > READY_WARN_AFTER_S and not warned:
                warned = True
                log.warning(
                    "%s not ready after %.0f s: %s",
                    runtime.name,
                    elapsed,
                    "; ".join(f"{name}: {reason}" for name, reason in failed.items()),
                )
            await asyncio.sleep(READY_ANNOUNCE_POLL_S if elapsed < READY_WARN_AFTER_S else 5.0)

    async def guarded() -> None:
        try:
            await watch()
        except Exception as error:  # an announcement never takes a service down
            log.warning("%s: readiness watch stopped (%s)", runtime.name, error)

    task = asyncio.create_task(guarded(), name=f"{runtime.name}-ready-announcement")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _install_infrastructure_handlers(app: FastAPI) -> None:
    """An unreachable database or bus is a 503 with Retry-After; a full producer buffer a 429."""

    def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s: %s", request.url.path, exc)
        return request_problem(
            ServiceUnavailable(Sentence(N_("the database is unavailable; retry later"))), request
        )

    def on_bus_down(request: Request, exc: Exception) -> JSONResponse:
        return request_problem(
            ServiceUnavailable(Sentence(N_("the bus is unavailable: %(error)s"), error=exc)), request
        )

    def on_buffer_full(request: Request, exc: Exception) -> JSONResponse:
        return request_problem(
            TooManyRequests(Sentence(N_("the publish buffer is full; slow down"))), request
        )

    app.add_exception_handler(OperationalError, on_database_down)
    app.add_exception_handler(sa_exc.TimeoutError, on_database_down)
    app.add_exception_handler(BusUnavailable, on_bus_down)
    app.add_exception_handler(BufferFull, on_buffer_full)


def _operations_router(service: str) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get(
        "/readyz",
        summary="The service can do its work: database and bus reachable, read models caught up",
        responses={503: {"description": "Not ready; the body says which check failed"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is None:
            raise ServiceUnavailable(Sentence(N_("the service is starting")))
        checks = await run_in_threadpool(_run_checks, runtime)
        failed = {name: reason for name, reason in checks.items() if reason != "ok"}
        if failed:
            raise ServiceUnavailable(
                Sentence(
                    N_("not ready: %(checks)s"),
                    checks="; ".join(f"{name}: {reason}" for name, reason in failed.items()),
                ),
                checks=checks,
            )
        return JSONResponse({"status": "ready", "service": service, "checks": checks})

    @router.get("/metrics", summary="Prometheus metrics of this service", response_class=Response)
    async def metrics(request: Request) -> Response:
        service_metrics: ServiceMetrics = request.app.state.metrics
        return service_metrics.exposition()

    return router


def _run_checks(runtime: Runtime) -> dict[str, str]:
    timeout = runtime.settings.readiness_timeout_s
    checks: dict[str, str] = {}
    try:
        db.ping(runtime.engine)
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unreachable ({type(error).__name__})"
    try:
        runtime.bus.admin().ping(timeout)
        checks["bus"] = "ok"
    except Exception as error:
        checks["bus"] = f"unreachable ({type(error).__name__})"
    for name, check in runtime.readiness:
        try:
            checks[name] = check() or "ok"
        except Exception as error:
            checks[name] = f"failed ({type(error).__name__})"
    return checks
