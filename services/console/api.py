"""HTTP routes of the console: each reads the form or query, calls one page function, renders it."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from services.common import i18n
from services.console import service
from services.console.deps import (
    COOKIE,
    LANG_COOKIE,
    ConsoleSettingsDep,
    HttpDep,
    Session,
    SessionDep,
    prefix_of,
    render,
)
from services.console.exceptions import ApiError
from services.console.gateway import PlatformApi

router = APIRouter(include_in_schema=False)


async def _form(request: Request) -> dict[str, list[str]]:
    return parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)


def _query(request: Request) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        query.setdefault(name, []).append(value)
    return query


FormDep = Annotated[dict[str, list[str]], Depends(_form)]
QueryDep = Annotated[dict[str, list[str]], Depends(_query)]


def _safe_next(request: Request, target: str | None) -> str:
    """Only a page of this console: never an open redirect to another site."""
    prefix = prefix_of(request)
    if target and target.startswith(f"{prefix}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{prefix}/"


# --- login ---------------------------------------------------------------------------------------


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": next or "", "error": None})


@router.post("/login")
async def login(request: Request, form: FormDep, http: HttpDep, settings: ConsoleSettingsDep) -> Response:
    """Check the key with the catalog (``GET /v1/me``) and keep it in the session cookie."""
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next(request, (form.get("next") or [""])[0])
    if not key:
        return render(request, "login.html", {"next": target, "error": i18n._("Enter an API key.")}, 401)
    try:
        await service.who_is(PlatformApi(http, key))
    except ApiError as error:
        if error.status not in (401, 403):
            raise
        message = i18n._("This API key is not valid: unknown, revoked or mistyped.")
        return render(request, "login.html", {"next": target, "error": message}, 401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        path=f"{prefix_of(request)}/",
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
    )
    return response


@router.get("/lang/{tag}")
async def switch_language(request: Request, tag: str, next: str | None = None) -> Response:
    """The language switch on every page: remembers the choice in a cookie and goes back."""
    response = RedirectResponse(_safe_next(request, next), status_code=303)
    if (locale := i18n.supported(tag)) is not None:
        response.set_cookie(
            LANG_COOKIE,
            locale.replace("_", "-"),
            path=f"{prefix_of(request)}/",
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="lax",
        )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse(f"{prefix_of(request)}/login", status_code=303)
    response.delete_cookie(COOKIE, path=f"{prefix_of(request)}/", httponly=True, samesite="strict")
    return response


# --- pages ---------------------------------------------------------------------------------------


@router.get("/")
async def home(request: Request, session: SessionDep) -> Response:
    return render(request, "home.html", {}, session=session)


@router.get("/datasets")
async def datasets(
    request: Request, session: SessionDep, query: QueryDep, settings: ConsoleSettingsDep
) -> Response:
    page = await service.search_datasets(session.api, query, settings.page_size)
    return render(request, "datasets.html", page, session=session)


@router.get("/datasets/{dataset_id}")
async def dataset(
    request: Request, dataset_id: str, session: SessionDep, old: str | None = None, new: str | None = None
) -> Response:
    page = await service.dataset_page(session.api, dataset_id, old, new)
    return render(request, "dataset.html", page, session=session)


@router.get("/access-requests")
async def access_requests(
    request: Request, session: SessionDep, query: QueryDep, settings: ConsoleSettingsDep
) -> Response:
    page = await service.request_queue(session.api, session.caller, query, settings.page_size)
    return render(request, "access_requests.html", page, session=session)


@router.get("/access-requests/{request_id}")
async def access_request(request: Request, request_id: str, session: SessionDep) -> Response:
    page = await service.request_page(session.api, session.caller, request_id)
    return render(request, "access_request.html", {**page, "error": None}, session=session)


async def _decide(
    request: Request, request_id: str, session: Session, form: dict[str, list[str]], decision: str
) -> Response:
    decide = service.approve if decision == "approve" else service.reject
    try:
        decided = await decide(session.api, session.caller, request_id, form)
    except ApiError as error:
        if error.status not in (400, 409, 422):
            raise
        # Refused terms: show the request again with the catalog's reasons, next to the form.
        page = await service.request_page(session.api, session.caller, request_id)
        context: dict[str, Any] = {**page, "error": error, "decision": decision, "submitted": form}
        return render(request, "access_request.html", context, status=error.status, session=session)
    prefix = prefix_of(request)
    if decided.get("grant_id"):
        return RedirectResponse(f"{prefix}/grants/{quote(decided['grant_id'])}", status_code=303)
    return RedirectResponse(f"{prefix}/access-requests/{quote(request_id)}", status_code=303)


@router.post("/access-requests/{request_id}/approve")
async def approve(request: Request, request_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _decide(request, request_id, session, form, "approve")


@router.post("/access-requests/{request_id}/reject")
async def reject(request: Request, request_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _decide(request, request_id, session, form, "reject")


@router.get("/grants/{grant_id}")
async def grant(request: Request, grant_id: str, session: SessionDep) -> Response:
    page = await service.grant_page(session.api, grant_id)
    return render(request, "grant.html", page, session=session)


@router.get("/scenarios")
async def scenarios(request: Request, session: SessionDep) -> Response:
    page = await service.scenarios(session.api, session.caller)
    return render(request, "scenarios.html", page, session=session)


@router.get("/scenarios/{scenario_id}")
async def scenario(
    request: Request, scenario_id: str, session: SessionDep, settings: ConsoleSettingsDep
) -> Response:
    page = await service.scenario_page(session.api, session.caller, scenario_id, settings.page_size)
    return render(request, "scenario.html", page, session=session)


@router.get("/overview")
async def overview(request: Request, session: SessionDep) -> Response:
    page = await service.overview(session.api, session.caller)
    return render(request, "overview.html", page, session=session)


@router.get("/audit")
async def audit(
    request: Request, session: SessionDep, query: QueryDep, settings: ConsoleSettingsDep
) -> Response:
    page = await service.audit_page(session.api, query, settings.page_size)
    return render(request, "audit.html", page, session=session)
