"""HTTP routes of the console: each reads the form or query, calls one page function, renders it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from services.common import i18n
from services.console import evaluation_view, forms, needs_view, service
from services.console.deps import (
    COOKIE,
    LANG_COOKIE,
    ConsoleSettingsDep,
    HttpDep,
    PublicApiDep,
    Session,
    SessionDep,
    get_settings,
    prefix_of,
    render,
    same_origin,
)
from services.console.exceptions import ApiError
from services.console.forms import Failure
from services.console.gateway import PlatformApi

router = APIRouter(include_in_schema=False, dependencies=[Depends(same_origin)])

REFUSALS = (400, 403, 409, 422)
"""Answers that refuse what a form asked: shown on the page, next to the form, with what was typed."""


async def _form(request: Request) -> dict[str, list[str]]:
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return forms.multipart(content_type, body)
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


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


# --- public pages: no login, what a visitor without a key may see -----------------------------


def _page_url(request: Request) -> str:
    return str(request.url.replace(query=""))


@router.get("/public/datasets")
async def public_datasets(
    request: Request, api: PublicApiDep, query: QueryDep, settings: ConsoleSettingsDep
) -> Response:
    page = await service.public_datasets(api, query, settings.page_size, _page_url(request))
    return render(request, "public_datasets.html", page)


@router.get("/public/datasets/{dataset_id}")
async def public_dataset(request: Request, dataset_id: str, api: PublicApiDep) -> Response:
    page = await service.public_dataset_page(api, dataset_id, _page_url(request))
    return render(request, "public_dataset.html", page)


# --- forms ---------------------------------------------------------------------------------------

PageLoad = Callable[[], Awaitable[dict[str, Any]]]


async def _show(
    request: Request,
    session: Session,
    template: str,
    load: PageLoad,
    failure: Failure | None = None,
    status: int = 200,
) -> Response:
    """A page, with a refused form's problem and inputs when there is one (``failure``)."""
    page = await load()
    return render(request, template, {**page, "failure": failure}, status, session=session)


async def _submit(
    request: Request,
    session: Session,
    form_id: str,
    form: dict[str, list[str]],
    action: Awaitable[Any],
    done: Callable[[Any], str | Response],
    shown_on: tuple[str, PageLoad],
) -> Response:
    """Carry out a form. On success, 303 to the page it made or changed (``done`` of the answer: a
    path under the console), so a reload never sends it twice, or the one page ``done`` renders
    (a new key). On a refusal, the page of the form again (``shown_on``: template and loader) with
    the service's reasons next to the form and what was typed kept."""
    try:
        result = await action
    except ApiError as error:
        if error.status not in REFUSALS:
            raise
        template, load = shown_on
        return await _show(request, session, template, load, Failure(form_id, error, form), error.status)
    then = done(result)
    if isinstance(then, Response):
        return then
    return RedirectResponse(prefix_of(request) + then, status_code=303)


def _page(path: str, **ids: str) -> str:
    return path.format(**{name: quote(value, safe="") for name, value in ids.items()})


def _dataset_page(request: Request, session: Session, dataset_id: str) -> tuple[str, PageLoad]:
    query = request.query_params
    return "dataset.html", lambda: service.dataset_page(
        session.api, session.caller, dataset_id, query.get("old"), query.get("new")
    )


@router.get("/datasets/{dataset_id}")
async def dataset(request: Request, dataset_id: str, session: SessionDep) -> Response:
    return await _show(request, session, *_dataset_page(request, session, dataset_id))


@router.post("/datasets/{dataset_id}/access-requests")
async def file_request(request: Request, dataset_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _submit(
        request,
        session,
        "request",
        form,
        service.file_request(session.api, session.caller, dataset_id, form),
        lambda filed: _page("/access-requests/{id}", id=filed["id"]),
        _dataset_page(request, session, dataset_id),
    )


@router.get("/access-requests")
async def access_requests(
    request: Request, session: SessionDep, query: QueryDep, settings: ConsoleSettingsDep
) -> Response:
    page = await service.request_queue(session.api, session.caller, query, settings.page_size)
    return render(request, "access_requests.html", page, session=session)


def _registration_page(
    session: Session, document: forms.ContractDocument | None = None
) -> tuple[str, PageLoad]:
    return "register.html", lambda: service.registration_form(session.caller, document)


@router.get("/contracts/new")
async def registration(request: Request, session: SessionDep) -> Response:
    return await _show(request, session, *_registration_page(session))


@router.post("/contracts")
async def register(request: Request, session: SessionDep, form: FormDep) -> Response:
    """Register a pasted or uploaded contract; a new version of an existing dataset is shown with
    what it changes first, and registered when the person confirms it."""
    document = forms.contract_document(form)
    kept = {**form, "document": [document.text], "upload": []}

    def done(result: dict[str, Any]) -> str | Response:
        if "registered" in result:
            return _page("/datasets/{id}", id=result["registered"]["dataset_id"])
        return render(request, "register.html", {**result, "failure": None}, session=session)

    return await _submit(
        request,
        session,
        "register",
        kept,
        service.register_or_preview(
            session.api, session.caller, document, forms.first(form, "confirmed") is not None
        ),
        done,
        _registration_page(session, document),
    )


def _request_page(session: Session, request_id: str) -> tuple[str, PageLoad]:
    async def load() -> dict[str, Any]:
        return {**await service.request_page(session.api, session.caller, request_id), "error": None}

    return "access_request.html", load


@router.get("/access-requests/{request_id}")
async def access_request(request: Request, request_id: str, session: SessionDep) -> Response:
    return await _show(request, session, *_request_page(session, request_id))


@router.post("/access-requests/{request_id}/withdraw")
async def withdraw(request: Request, request_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _submit(
        request,
        session,
        "withdraw",
        form,
        service.withdraw(session.api, session.caller, request_id, form),
        lambda _: _page("/access-requests/{id}", id=request_id),
        _request_page(session, request_id),
    )


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


def _grant_page(session: Session, grant_id: str) -> tuple[str, PageLoad]:
    return "grant.html", lambda: service.grant_page(session.api, session.caller, grant_id)


@router.get("/grants/{grant_id}")
async def grant(request: Request, grant_id: str, session: SessionDep) -> Response:
    return await _show(request, session, *_grant_page(session, grant_id))


async def change_grant(
    request: Request, grant_id: str, action: str, session: SessionDep, form: FormDep
) -> Response:
    """Suspend, resume, revoke (``action``) or narrow (``narrow``: new terms) a grant."""
    if action == "narrow":
        change = service.narrow_grant(session.api, session.caller, grant_id, form)
    else:
        change = service.change_grant_status(session.api, session.caller, grant_id, action, form)
    return await _submit(
        request,
        session,
        action,
        form,
        change,
        lambda _: _page("/grants/{id}", id=grant_id),
        _grant_page(session, grant_id),
    )


def _scenarios_page(session: Session) -> tuple[str, PageLoad]:
    return "scenarios.html", lambda: service.scenarios(session.api, session.caller)


@router.get("/scenarios")
async def scenarios(request: Request, session: SessionDep) -> Response:
    return await _show(request, session, *_scenarios_page(session))


@router.post("/scenarios")
async def create_scenario(request: Request, session: SessionDep, form: FormDep) -> Response:
    return await _submit(
        request,
        session,
        "scenario",
        form,
        service.create_scenario(session.api, session.caller, form),
        lambda created: _page("/scenarios/{id}", id=created["id"]),
        _scenarios_page(session),
    )


def _scenario_page(request: Request, session: Session, scenario_id: str) -> tuple[str, PageLoad]:
    page_size = get_settings(request).page_size
    return "scenario.html", lambda: service.scenario_page(session.api, session.caller, scenario_id, page_size)


@router.get("/scenarios/{scenario_id}")
async def scenario(request: Request, scenario_id: str, session: SessionDep) -> Response:
    return await _show(request, session, *_scenario_page(request, session, scenario_id))


@router.post("/scenarios/{scenario_id}/stage")
async def scenario_stage(request: Request, scenario_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _submit(
        request,
        session,
        "stage",
        form,
        service.change_stage(session.api, scenario_id, form),
        lambda _: _page("/scenarios/{id}", id=scenario_id),
        _scenario_page(request, session, scenario_id),
    )


# --- the scenario programme ----------------------------------------------------------------------


@router.get("/opportunity-lists")
async def opportunity_lists(request: Request, http: HttpDep, settings: ConsoleSettingsDep) -> Response:
    """Public, as the lists are: read without a key, whoever is logged in; with links to the
    platform's own JSON, CSV and Atom of them."""
    page = await service.opportunity_lists(PlatformApi(http, None))
    return render(
        request, "opportunity_lists.html", {**page, "api_root": (settings.api_url or "").rstrip("/")}
    )


def _proposals_page(session: Session, opening_id: str) -> tuple[str, PageLoad]:
    return "proposals.html", lambda: service.proposals_page(session.api, opening_id)


@router.get("/openings/{opening_id}/proposals")
async def proposals(request: Request, opening_id: str, session: SessionDep) -> Response:
    return await _show(request, session, *_proposals_page(session, opening_id))


@router.post("/openings/{opening_id}/selection")
async def select_proposals(request: Request, opening_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _submit(
        request,
        session,
        "selection",
        form,
        service.select_proposals(session.api, opening_id, form),
        lambda selected: _page("/scenarios/{id}", id=selected["scenarios"][0]["id"]),
        _proposals_page(session, opening_id),
    )


@router.post("/scenarios/{scenario_id}/status")
async def scenario_status(request: Request, scenario_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _submit(
        request,
        session,
        "status",
        form,
        service.set_scenario_status(session.api, session.caller, scenario_id, form),
        lambda _: _page("/scenarios/{id}", id=scenario_id),
        _scenario_page(request, session, scenario_id),
    )


def _key_shown_once(request: Request, session: Session, back: str) -> Callable[[Any], Response]:
    """The one page that shows a new key. It is the answer to the POST itself, not a redirect: the
    key must never be in a URL (history, logs, Referer), and the catalog keeps only its hash, so
    no later page could show it. ``Cache-Control: no-store`` keeps it out of the browser's cache."""
    return lambda issued: render(
        request, "key_issued.html", {"issued": issued, "back": back}, 201, session=session
    )


@router.post("/scenarios/{scenario_id}/keys")
async def issue_scenario_key(
    request: Request, scenario_id: str, session: SessionDep, form: FormDep
) -> Response:
    return await _submit(
        request,
        session,
        "key",
        form,
        service.issue_scenario_key(session.api, session.caller, scenario_id, form),
        _key_shown_once(request, session, _page("/scenarios/{id}", id=scenario_id)),
        _scenario_page(request, session, scenario_id),
    )


# --- subscriptions -------------------------------------------------------------------------------


def _subscription_page(session: Session, subscription_id: str) -> tuple[str, PageLoad]:
    return "subscription.html", lambda: service.subscription_page(
        session.api, session.caller, subscription_id
    )


@router.get("/subscriptions/{subscription_id}")
async def subscription(request: Request, subscription_id: str, session: SessionDep) -> Response:
    return await _show(request, session, *_subscription_page(session, subscription_id))


@router.post("/subscriptions")
async def subscribe(request: Request, session: SessionDep, form: FormDep) -> Response:
    return await _submit(
        request,
        session,
        "subscribe",
        form,
        service.create_subscription(session.api, session.caller, form),
        lambda created: _page("/subscriptions/{id}", id=created["id"]),
        _scenario_page(request, session, session.caller.id),
    )


@router.post("/webhooks")
async def create_webhook(request: Request, session: SessionDep, form: FormDep) -> Response:
    """A webhook subscription. The answer is the one page that shows its signing secret, as for a
    new key: never in a URL, and feeds shows it no second time."""
    return await _submit(
        request,
        session,
        "webhook",
        form,
        service.create_webhook(session.api, session.caller, form),
        lambda created: render(request, "webhook_created.html", {"created": created}, 201, session=session),
        _scenario_page(request, session, session.caller.id),
    )


async def change_subscription(
    request: Request, subscription_id: str, action: str, session: SessionDep, form: FormDep
) -> Response:
    """Pause, resume, move to the earliest or latest record (``position``), or delete."""
    after_delete = (
        _page("/scenarios/{id}", id=session.caller.id) if session.caller.is_scenario else "/scenarios"
    )
    return await _submit(
        request,
        session,
        action,
        form,
        service.change_subscription(session.api, subscription_id, action, form),
        lambda _: after_delete if action == "delete" else _page("/subscriptions/{id}", id=subscription_id),
        _subscription_page(session, subscription_id),
    )


# --- administration ------------------------------------------------------------------------------


def _admin_page(session: Session) -> tuple[str, PageLoad]:
    return "admin.html", lambda: service.admin_page(session.api, session.caller)


@router.get("/admin")
async def admin(request: Request, session: SessionDep) -> Response:
    return await _show(request, session, *_admin_page(session))


async def create(request: Request, what: str, session: SessionDep, form: FormDep) -> Response:
    """A new domain, department or principal; a principal's page next, to issue its first key."""
    return await _submit(
        request,
        session,
        what,
        form,
        service.create(session.api, session.caller, what, form),
        lambda made: _page("/principals/{id}", id=made["id"]) if what == "principal" else f"/admin#{what}s",
        _admin_page(session),
    )


def _keys_home(session: Session, principal_id: str) -> str:
    """Where a principal's keys are shown: "My department" for a department's own, else its page."""
    if session.caller.is_department and session.caller.id == principal_id:
        return "/department"
    return _page("/principals/{id}", id=principal_id)


def _keys_page(session: Session, principal_id: str) -> tuple[str, PageLoad]:
    if _keys_home(session, principal_id) == "/department":
        return "principal.html", lambda: service.department_page(session.api, session.caller)
    return "principal.html", lambda: service.keys_page(session.api, session.caller, principal_id)


@router.get("/principals/{principal_id}")
async def principal(request: Request, principal_id: str, session: SessionDep) -> Response:
    return await _show(request, session, *_keys_page(session, principal_id))


@router.get("/department")
async def department(request: Request, session: SessionDep) -> Response:
    return await _show(
        request, session, "principal.html", lambda: service.department_page(session.api, session.caller)
    )


@router.post("/principals/{principal_id}/keys")
async def issue_key(request: Request, principal_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _submit(
        request,
        session,
        "key",
        form,
        service.issue_key(session.api, session.caller, principal_id, form),
        _key_shown_once(request, session, _keys_home(session, principal_id)),
        _keys_page(session, principal_id),
    )


@router.post("/principals/{principal_id}/keys/{prefix}/revoke")
async def revoke_key(
    request: Request, principal_id: str, prefix: str, session: SessionDep, form: FormDep
) -> Response:
    return await _submit(
        request,
        session,
        "revoke-key",
        form,
        service.revoke_key(session.api, session.caller, principal_id, prefix),
        lambda _: _keys_home(session, principal_id),
        _keys_page(session, principal_id),
    )


@router.get("/overview")
async def overview(request: Request, session: SessionDep) -> Response:
    page = await evaluation_view.overview_page(session.api, session.caller)
    return render(request, "overview.html", page, session=session)


@router.get("/audit")
async def audit(
    request: Request, session: SessionDep, query: QueryDep, settings: ConsoleSettingsDep
) -> Response:
    page = await service.audit_page(session.api, query, settings.page_size)
    return render(request, "audit.html", page, session=session)


# --- the needs board ------------------------------------------------------------------------------


@router.get("/needs")
async def needs(
    request: Request, session: SessionDep, query: QueryDep, settings: ConsoleSettingsDep
) -> Response:
    page = await needs_view.board(session.api, session.caller, query, settings.page_size)
    return render(request, "needs.html", {**page, "failure": None}, session=session)


@router.post("/needs")
async def file_need(
    request: Request, session: SessionDep, form: FormDep, settings: ConsoleSettingsDep
) -> Response:
    async def board() -> dict[str, Any]:
        return await needs_view.board(session.api, session.caller, {}, settings.page_size)

    return await _submit(
        request,
        session,
        "need",
        form,
        needs_view.file_need(session.api, form),
        lambda filed: render(request, "need_filed.html", {"filed": filed}, 201, session=session),
        ("needs.html", board),
    )


@router.get("/needs/residents")
async def resident_form(request: Request) -> Response:
    return render(request, "need_resident.html", {"failure": None, "posted": None})


@router.post("/needs/residents")
async def post_resident_need(request: Request, http: HttpDep, form: FormDep) -> Response:
    address = request.client.host if request.client else "unknown"
    try:
        posted = await needs_view.post_resident_need(http, address, form)
    except ApiError as error:
        if error.status not in (*REFUSALS, 429):
            raise
        failure = Failure("resident", error, form)
        return render(request, "need_resident.html", {"failure": failure, "posted": None}, error.status)
    return render(request, "need_resident.html", {"failure": None, "posted": posted}, 202)


@router.get("/needs/candidates")
async def need_candidates(request: Request, session: SessionDep) -> Response:
    page = await needs_view.candidates(session.api, session.caller)
    return render(request, "need_candidates.html", page, session=session)


def _need_page(session: Session, need_id: str) -> tuple[str, PageLoad]:
    return "need.html", lambda: needs_view.need_page(session.api, session.caller, need_id)


@router.get("/needs/{need_id}")
async def need(request: Request, need_id: str, session: SessionDep) -> Response:
    return await _show(request, session, *_need_page(session, need_id))


@router.post("/needs/{need_id}/comments/{comment_id}/hide")
async def hide_need_comment(
    request: Request, need_id: str, comment_id: str, session: SessionDep, form: FormDep
) -> Response:
    return await _submit(
        request,
        session,
        "hide",
        form,
        needs_view.hide_comment(session.api, need_id, comment_id, form),
        lambda _: _page("/needs/{id}", id=need_id),
        _need_page(session, need_id),
    )


# --- evaluation of scenarios and the city's indicators ------------------------------------------


@router.get("/indicators")
async def indicators(request: Request, session: SessionDep, query: QueryDep) -> Response:
    page = await evaluation_view.indicators_page(session.api, query)
    return render(request, "indicators.html", page, session=session)


@router.get("/evaluations")
async def evaluations(request: Request, session: SessionDep) -> Response:
    page = await evaluation_view.evaluations_page(session.api, session.caller)
    return render(request, "evaluations.html", page, session=session)


def _shown_period(form: dict[str, list[str]]) -> dict[str, str]:
    """The period the evaluation page showed when a form on it was sent (its hidden ``shown_*``)."""
    period = {"period_start": forms.first(form, "shown_start"), "period_end": forms.first(form, "shown_end")}
    return {name: value for name, value in period.items() if value}


def _evaluation_page(
    session: Session, scenario_id: str, query: dict[str, list[str]], verification: Any = None
) -> tuple[str, PageLoad]:
    return "evaluation.html", lambda: evaluation_view.evaluation_page(
        session.api, session.caller, scenario_id, query, verification
    )


def _evaluation_url(scenario_id: str, period: dict[str, str]) -> str:
    page = _page("/scenarios/{id}/evaluation", id=scenario_id)
    return f"{page}?{urlencode(period)}" if period else page


@router.get("/scenarios/{scenario_id}/evaluation")
async def evaluation(request: Request, scenario_id: str, session: SessionDep, query: QueryDep) -> Response:
    return await _show(request, session, *_evaluation_page(session, scenario_id, query))


async def _evaluation_form(
    request: Request,
    session: Session,
    scenario_id: str,
    form_id: str,
    form: dict[str, list[str]],
    action: Awaitable[Any],
    period_of: Callable[[Any], dict[str, str]] | None = None,
) -> Response:
    """A form of the evaluation page: back to the page on the period it showed (or the period of
    what the form made, ``period_of``), or the page again with the refusal next to the form."""
    shown = _shown_period(form)
    return await _submit(
        request,
        session,
        form_id,
        form,
        action,
        lambda made: _evaluation_url(scenario_id, period_of(made) if period_of else shown),
        _evaluation_page(session, scenario_id, {name: [value] for name, value in shown.items()}),
    )


@router.post("/scenarios/{scenario_id}/objectives")
async def set_objective(request: Request, scenario_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _evaluation_form(
        request,
        session,
        scenario_id,
        "objective",
        form,
        evaluation_view.set_objective(session.api, session.caller, scenario_id, form),
        lambda made: {"period_start": made["period_start"], "period_end": made["period_end"]},
    )


@router.post("/scenarios/{scenario_id}/objectives/{objective_id}/withdraw")
async def withdraw_objective(
    request: Request, scenario_id: str, objective_id: str, session: SessionDep, form: FormDep
) -> Response:
    return await _evaluation_form(
        request,
        session,
        scenario_id,
        f"withdraw-{objective_id}",
        form,
        evaluation_view.withdraw_objective(session.api, session.caller, scenario_id, objective_id, form),
    )


@router.post("/scenarios/{scenario_id}/outcomes")
async def report_outcome(request: Request, scenario_id: str, session: SessionDep, form: FormDep) -> Response:
    corrects = forms.first(form, "corrects")
    return await _evaluation_form(
        request,
        session,
        scenario_id,
        f"correct-{corrects}" if corrects else "outcome",
        form,
        evaluation_view.report_outcome(session.api, session.caller, scenario_id, form),
    )


@router.post("/scenarios/{scenario_id}/verdicts")
async def record_verdict(request: Request, scenario_id: str, session: SessionDep, form: FormDep) -> Response:
    return await _evaluation_form(
        request,
        session,
        scenario_id,
        "verdict",
        form,
        evaluation_view.record_verdict(session.api, session.caller, scenario_id, form),
        lambda made: {"period_start": made["period_start"], "period_end": made["period_end"]},
    )


@router.post("/scenarios/{scenario_id}/evaluation/verify")
async def verify_report(request: Request, scenario_id: str, session: SessionDep, form: FormDep) -> Response:
    """The catalog's verification of a saved report, shown on the page (it changes nothing, so
    it is the answer to the POST itself)."""
    shown = {name: [value] for name, value in _shown_period(form).items()}
    try:
        checked = await evaluation_view.verify(session.api, session.caller, form)
    except ApiError as error:
        if error.status not in REFUSALS:
            raise
        failure = Failure("verify", error, form)
        return await _show(
            request, session, *_evaluation_page(session, scenario_id, shown), failure, error.status
        )
    return await _show(request, session, *_evaluation_page(session, scenario_id, shown, checked))


REPORT_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # quality's HTML report is opened as it is, and runs nothing
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}


def _report_route(fmt: str) -> ActionRoute:
    async def route(request: Request, scenario_id: str, session: SessionDep, query: QueryDep) -> Response:
        """The evaluation report of a period as quality renders it, to save (JSON, CSV) or read (HTML)."""
        content, media_type = await evaluation_view.report_document(
            session.api, session.caller, scenario_id, fmt, query
        )
        day = evaluation_view.day_of(evaluation_view.as_moment(forms.first(query, "period_start")))
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"evaluation-{scenario_id}-{day}.{fmt}")
        disposition = "inline" if fmt == "html" else "attachment"
        headers = {**REPORT_HEADERS, "Content-Disposition": f'{disposition}; filename="{name}"'}
        return Response(content, media_type=media_type, headers=headers)

    return route


# --- the form routes, one path per action ---------------------------------------------------------
# One explicit path per action (never a path parameter for the action): a GET of a path that is not
# a page stays a 404, and an id with an encoded "/" in it cannot reach a form's route.

ActionRoute = Callable[..., Awaitable[Response]]


def _grant_action(action: str) -> ActionRoute:
    async def route(request: Request, grant_id: str, session: SessionDep, form: FormDep) -> Response:
        return await change_grant(request, grant_id, action, session, form)

    return route


def _subscription_action(action: str) -> ActionRoute:
    async def route(request: Request, subscription_id: str, session: SessionDep, form: FormDep) -> Response:
        return await change_subscription(request, subscription_id, action, session, form)

    return route


def _admin_form(what: str) -> ActionRoute:
    async def route(request: Request, session: SessionDep, form: FormDep) -> Response:
        return await create(request, what, session, form)

    return route


for _action in ("narrow", *service.GRANT_ACTIONS):
    router.post(f"/grants/{{grant_id}}/{_action}")(_grant_action(_action))
for _action in (*service.SUBSCRIPTION_ACTIONS, "position", "delete"):
    router.post(f"/subscriptions/{{subscription_id}}/{_action}")(_subscription_action(_action))


def _need_action(action: str) -> ActionRoute:
    async def route(request: Request, need_id: str, session: SessionDep, form: FormDep) -> Response:
        return await _submit(
            request,
            session,
            action,
            form,
            needs_view.act(session.api, need_id, action, form),
            lambda _: _page("/needs/{id}", id=need_id),
            _need_page(session, need_id),
        )

    return route


for _format in evaluation_view.REPORT_FORMATS:
    router.get(f"/scenarios/{{scenario_id}}/evaluation/report.{_format}")(_report_route(_format))
for _action in needs_view.ACTIONS:
    router.post(f"/needs/{{need_id}}/{_action}")(_need_action(_action))
for _what in service.ADMIN_FORMS:
    router.post(f"/admin/{_what}")(_admin_form(_what))
