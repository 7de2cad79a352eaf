"""The console's app: server-rendered pages for people, over the four services' HTTP APIs.

``citybase up`` mounts it at ``/console`` and hands it a transport into the platform itself, so
its calls go through the same routes, authentication and authorization as any client's, without a
socket. With ``CITYBASE_CONSOLE_API_URL`` it calls a platform elsewhere (a gateway serving
/catalog, /ingest, /feeds and /quality).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common import i18n
from services.console.api import router
from services.console.deps import COOKIE, locale_of, prefix_of, render
from services.console.exceptions import ApiError, CrossSiteRequest, LoginRequired, NotForYourRole
from services.console.settings import ConsoleSettings

IN_PROCESS_URL = "http://citybase.internal"


def create_app(
    settings: ConsoleSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    settings = settings or ConsoleSettings()
    if transport is None and settings.api_url is None:
        raise ValueError("the console needs CITYBASE_CONSOLE_API_URL or a transport into the platform")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(
            base_url=settings.api_url or IN_PROCESS_URL, transport=transport, timeout=settings.timeout_s
        ) as client:
            app.state.http = client
            yield

    app = FastAPI(
        title="citybase console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.console_settings = settings
    app.add_middleware(LocaleMiddleware)
    app.include_router(router)
    install_error_pages(app)
    return app


class LocaleMiddleware:
    """Speaks each request's language (:func:`services.console.deps.locale_of`) while it is served,
    error pages included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with i18n.use(locale_of(Request(scope))):
            await self.app(scope, receive, send)


def _to_login(request: Request) -> Response:
    prefix = prefix_of(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"{prefix}/login?next={quote(here, safe='')}", status_code=303)
    response.delete_cookie(COOKIE, path=f"{prefix}/")
    return response


def install_error_pages(app: FastAPI) -> None:
    """A refusal is a page that says why, with the status the service gave; never a 500."""

    async def on_login_required(request: Request, _: Exception) -> Response:
        return _to_login(request)

    async def on_not_for_your_role(request: Request, error: Exception) -> Response:
        assert isinstance(error, NotForYourRole)
        return render(
            request, "error.html", {"title": i18n._("Not for your role"), "detail": error.detail}, 403
        )

    async def on_cross_site(request: Request, _: Exception) -> Response:
        detail = i18n._("This form was not sent from a page of this console, so it was not carried out.")
        return render(request, "error.html", {"title": i18n._("Refused"), "detail": detail}, 403)

    async def on_api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        if error.status == 401:
            # The key was revoked or the principal suspended since login: log in again.
            return _to_login(request)
        status = error.status if 400 <= error.status < 500 else 502
        title = {403: i18n._("Not for your role"), 404: i18n._("Not found")}.get(status, error.title)
        return render(
            request,
            "error.html",
            {"title": title, "detail": error.detail, "service": error.service, "errors": error.field_errors},
            status,
        )

    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(NotForYourRole, on_not_for_your_role)
    app.add_exception_handler(CrossSiteRequest, on_cross_site)
    app.add_exception_handler(ApiError, on_api_error)
