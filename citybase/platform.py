"""The whole platform in one process: the four services mounted under one port.

This is what ``citybase up`` (and ``make run``) serves: catalog, ingest, feeds and quality share
one database engine and one bus, opened and closed by this app's lifespan, and each keeps its
own routes, OpenAPI document, metrics registry and workers under its own prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI, Request

from services.catalog import examples as catalog_examples
from services.catalog import models as catalog_models
from services.catalog.app import create_app as create_catalog
from services.catalog.audit import service as audit
from services.catalog.datasets import service as datasets_service
from services.catalog.events import CatalogEvents
from services.catalog.principals import service as principals_service
from services.common import db
from services.common.app import Infrastructure
from services.common.i18n import _
from services.common.outbox import Outbox
from services.common.problems import install_problem_handlers
from services.common.settings import Settings
from services.console.app import create_app as create_console
from services.console.settings import ConsoleSettings
from services.feeds.app import create_app as create_feeds
from services.feeds.settings import FeedsSettings
from services.ingest.app import create_app as create_ingest
from services.quality.app import create_app as create_quality

SERVICE_FACTORIES: dict[str, Callable[..., FastAPI]] = {
    "catalog": create_catalog,
    "ingest": create_ingest,
    "feeds": create_feeds,
    "quality": create_quality,
}


def create_platform_app(
    settings: Settings,
    console_settings: ConsoleSettings | None = None,
    feeds_settings: FeedsSettings | None = None,
) -> FastAPI:
    holder: dict[str, Infrastructure] = {}

    def shared() -> Infrastructure:
        return holder["infrastructure"]

    services = {
        name: factory(settings, infrastructure=shared)
        if name != "feeds" or feeds_settings is None
        else create_feeds(settings, infrastructure=shared, feeds_settings=feeds_settings)
        for name, factory in SERVICE_FACTORIES.items()
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder["infrastructure"] = await asyncio.to_thread(
            Infrastructure.open, settings, client_id="citybase"
        )
        try:
            async with AsyncExitStack() as stack:
                # Starlette does not run the lifespans of mounted apps: enter each one here.
                for service in services.values():
                    await stack.enter_async_context(service.router.lifespan_context(service))
                await stack.enter_async_context(console.router.lifespan_context(console))
                yield
        finally:
            await asyncio.to_thread(holder.pop("infrastructure").close)

    app = FastAPI(
        title="citybase",
        description="The digital base of a city: one process serving catalog, ingest, feeds and quality.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.services = services
    # The console calls the services' HTTP APIs like any client; in one process it reaches them
    # through the platform app itself, without a socket, unless CITYBASE_CONSOLE_API_URL says where.
    console_settings = console_settings or ConsoleSettings()
    console = create_console(
        console_settings,
        # A service's 500 reaches the console as a 500 answer, as over a socket, not as an exception.
        transport=None
        if console_settings.api_url
        else httpx.ASGITransport(app=app, raise_app_exceptions=False),
    )
    # What no mounted service answers (a path outside them, or one a mount's pattern does not match,
    # such as an id with an encoded newline) is still answered with problem+json.
    install_problem_handlers(app)

    @app.get("/", summary="Where everything is")
    async def index(request: Request) -> dict[str, object]:
        base = str(request.base_url).rstrip("/")
        return {
            "name": "citybase",
            "console": f"{base}/console/",
            "services": {
                name: {
                    "docs": f"{base}/{name}/docs",
                    "openapi": f"{base}/{name}/openapi.json",
                    "health": f"{base}/{name}/healthz",
                    "ready": f"{base}/{name}/readyz",
                    "metrics": f"{base}/{name}/metrics",
                }
                for name in services
            },
        }

    for name, service in services.items():
        app.mount(f"/{name}", service, name=name)
    app.mount("/console", console, name="console")
    return app


def one_process_feeds_settings(settings: Settings) -> FeedsSettings:
    """Feeds' settings for ``citybase up``: the secret of the environment if it sets one, else the
    data directory's (made on first start, mode 0600), whatever the database and bus: one process
    is the only reader of its cursors."""
    return FeedsSettings().with_secret(settings, one_process=True)


@dataclass(frozen=True)
class Preparation:
    admin_key: str | None
    examples: list[str]


def examples_dir() -> Path:
    """The example departments and contracts shipped with citybase (``contracts/``)."""
    return Path(__file__).resolve().parent.parent / "contracts"


def prepare(settings: Settings, *, load_examples: bool = True) -> Preparation:
    """First start of ``citybase up``: migrate every service, create the admin key on an empty
    catalog and register the example contracts. Events wait in the catalog's outbox until the
    catalog starts and relays them."""
    settings.ensure_data_dir()
    engine = db.create_db_engine(settings.database_url)
    try:
        for factory in SERVICE_FACTORIES.values():
            spec = factory(settings).state.spec
            db.migrate(settings.database_url, spec.migrations, spec.version_table, engine)
        events = CatalogEvents(Outbox(catalog_models.outbox))
        with db.unit_of_work(db.session_factory(engine)) as session:
            admin = principals_service.bootstrap_admin(session, events=events)
            if admin is not None:
                audit.append(
                    session,
                    audit.AuditEvent(
                        action="api_key.issue",
                        resource_type="api_key",
                        resource_id=admin.prefix,
                        actor_id="citybase",
                        actor_kind="system",
                        details={"principal_id": admin.principal_id, "reason": "first start"},
                    ),
                )
            loaded: list[str] = []
            if load_examples and datasets_service.is_empty(session) and examples_dir().is_dir():
                loaded = catalog_examples.load_examples(session, events=events, directory=examples_dir())
                audit.append(
                    session,
                    audit.AuditEvent(
                        action="contract_version.register",
                        resource_type="catalog",
                        resource_id="examples",
                        actor_id="citybase",
                        actor_kind="system",
                        details={"versions": loaded},
                    ),
                )
    finally:
        engine.dispose()
    return Preparation(admin_key=admin.key if admin else None, examples=loaded)


class NoAdmin(Exception):
    """No catalog database here, or no admin principal of that id in it."""


@dataclass(frozen=True)
class AdminKeyReset:
    key: str
    revoked: list[str]


def reset_admin_key(settings: Settings, principal_id: str = "admin") -> AdminKeyReset:
    """Revoke every key of the admin principal and issue it a new one, straight in the catalog's
    database (a lost admin key cannot call the API): the recovery ``citybase admin reset-key``
    offers to whoever holds the data directory. The revocations and the new key reach the running
    services through the outbox, as any key change; both are audited."""
    from sqlalchemy import select

    from services.common import catalog_events
    from services.common.clock import utcnow

    if settings.database_url.startswith("sqlite:///"):
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise NoAdmin(
                _(
                    "no citybase database at %(path)s: start the platform once (citybase up), or pass --data-dir"
                )
                % {"path": path}
            )
    engine = db.create_db_engine(settings.database_url)
    try:
        events = CatalogEvents(Outbox(catalog_models.outbox))
        with db.unit_of_work(db.session_factory(engine)) as session:
            admin = session.get(catalog_models.Principal, principal_id)
            if admin is None or admin.kind != "admin":
                raise NoAdmin(
                    _("no admin principal %(id)s in %(database)s")
                    % {"id": principal_id, "database": settings.database_url}
                )
            now = utcnow()
            revoked: list[str] = []
            for api_key in session.scalars(
                select(catalog_models.ApiKey).where(
                    catalog_models.ApiKey.principal_id == principal_id,
                    catalog_models.ApiKey.revoked_at.is_(None),
                )
            ):
                api_key.revoked_at = now
                revoked.append(api_key.prefix)
                events.publish(
                    session,
                    catalog_events.API_KEY,
                    api_key.prefix,
                    {
                        "prefix": api_key.prefix,
                        "principal_id": api_key.principal_id,
                        "key_hash": api_key.key_hash,
                        "revoked_at": now.isoformat(),
                    },
                )
            session.flush()
            issued = principals_service.add_api_key(
                session, events=events, principal_id=principal_id, name="reset"
            )
            for action, prefix, details in [
                *(
                    ("api_key.revoke", prefix, {"principal_id": principal_id, "reason": "admin key reset"})
                    for prefix in revoked
                ),
                ("api_key.issue", issued.prefix, {"principal_id": principal_id, "reason": "admin key reset"}),
            ]:
                audit.append(
                    session,
                    audit.AuditEvent(
                        action=action,
                        resource_type="api_key",
                        resource_id=prefix,
                        actor_id="citybase",
                        actor_kind="system",
                        details=details,
                    ),
                )
    finally:
        engine.dispose()
    return AdminKeyReset(key=issued.key, revoked=revoked)
