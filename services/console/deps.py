"""Dependencies of the console's routes: the HTTP client, the settings, the session and rendering."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment

from services.common import i18n
from services.common.page_style import page_environment
from services.console import contract_diff, evaluation_view, service
from services.console.exceptions import CrossSiteRequest, LoginRequired
from services.console.gateway import PlatformApi
from services.console.labels import label
from services.console.settings import ConsoleSettings

COOKIE = "citybase_console"
"""The session cookie. It holds the API key itself (HttpOnly, SameSite=Strict, path of the console):
the console keeps no session store, and a key revoked in the catalog ends its sessions at once
because every page presents the key to the services again."""

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    # The pages run no script at all: a policy that forbids any keeps an injected one inert.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

LANG_COOKIE = "citybase_lang"
"""The language a person chose with the switch on every page (``zh-CN`` or ``en``); without it the
browser's ``Accept-Language`` decides."""


def _environment() -> Environment:
    env = page_environment(Path(__file__).resolve().parent / "templates")
    env.filters["label"] = label
    env.filters["json"] = contract_diff.shown
    env.filters["examples"] = service.examples
    env.filters["day"] = evaluation_view.shown_day
    env.globals["languages"] = i18n.LANGUAGE_NAMES
    return env


TEMPLATES = Jinja2Templates(env=_environment())


def locale_of(request: Request) -> str:
    """``?lang=`` on the URL, else the language cookie, else ``Accept-Language``, else English."""
    return i18n.negotiate(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        accept_language=request.headers.get("accept-language"),
    )


def prefix_of(request: Request) -> str:
    """Where the console is mounted (``/console`` under ``citybase up``), for its own links."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def get_http(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http
    return client


def get_settings(request: Request) -> ConsoleSettings:
    settings: ConsoleSettings = request.app.state.console_settings
    return settings


def same_origin(request: Request) -> None:
    """Refuse a form sent from any page but the console's own: the defence against cross-site
    request forgery, on every POST (login and logout included).

    Two layers. The session cookie is ``SameSite=Strict``, so a browser sends it with no request that
    another site starts. And here the ``Origin`` header (``Referer`` where a browser sends no
    ``Origin``) must name the host this request was sent to: that also stops a page on a sibling
    host of the same site, which SameSite counts as same-site. A check of the headers rather than
    a per-session token because the console keeps no session store (the cookie holds the key
    itself, see :data:`COOKIE`), pages run no script to carry a token, and every browser sends
    ``Origin`` on a cross-origin POST, which is the forgery this stops. A request with neither
    header comes from no browser page (a script with the key needs no forgery) and passes. Behind a
    reverse proxy, the proxy must pass the ``Host`` header through unchanged.
    """
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent_from = request.headers.get("origin") or request.headers.get("referer")
    if sent_from is None:
        return
    host = request.headers.get("host") or request.url.netloc
    if sent_from == "null" or urlsplit(sent_from).netloc.lower() != host.lower():
        raise CrossSiteRequest()


HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
ConsoleSettingsDep = Annotated[ConsoleSettings, Depends(get_settings)]


@dataclass(frozen=True)
class Session:
    api: PlatformApi
    caller: service.Caller


async def get_session(request: Request, http: HttpDep) -> Session:
    key = request.cookies.get(COOKIE)
    if not key:
        raise LoginRequired()
    api = PlatformApi(http, key)
    session = Session(api, await service.who_is(api))
    # Kept for the error pages, which render outside the route but show the same navigation.
    request.state.caller = session.caller
    return session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_public_api(request: Request, http: HttpDep) -> PlatformApi:
    """The platform as a visitor without a key sees it: the public pages need no login."""
    return PlatformApi(http, None, forwarded_for=request.client.host if request.client else None)


PublicApiDep = Annotated[PlatformApi, Depends(get_public_api)]


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    *,
    session: Session | None = None,
) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            **context,
            "prefix": prefix_of(request),
            "locale": i18n.current(),
            "lang_tag": i18n.tag(),
            "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "caller": session.caller if session else getattr(request.state, "caller", None),
        },
        status_code=status,
        headers={**SECURITY_HEADERS, "Content-Language": i18n.tag(), "Vary": "Accept-Language, Cookie"},
    )
