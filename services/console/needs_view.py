"""The needs board in the console: the board with its filters, a need's page (answer, history,
thread, the caller's follow with its webhook and pushes, and the forms the caller's role may use),
operators' candidate needs, and the residents' form, which needs no login.

Each function takes the :class:`PlatformApi` of the person logged in (the residents' form an
anonymous client) and returns what its template renders; the catalog decides what is allowed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from services.common import i18n
from services.console.exceptions import ApiError
from services.console.forms import Form, first
from services.console.gateway import PlatformApi, api_path
from services.console.service import Caller, require_operator

STATUSES = ("open", "offered", "committed", "fulfilled", "declined")
"""The board's status filter; operators also see ``held`` (their moderation queue) and ``rejected``."""
MODERATED = ("held", "rejected")
FREQUENCIES = ("high", "medium", "low")
URGENCIES = ("urgent", "pressing", "normal")
WAITING = ("open", "offered", "committed")


def _need_path(need_id: str, tail: str = "") -> str:
    return api_path("/v1/needs/{need_id}", need_id=need_id) + tail


async def board(api: PlatformApi, caller: Caller, form: Form, limit: int) -> dict[str, Any]:
    """The board, filtered by status, domain, words and overdue commitments."""
    filters = {
        "status": first(form, "status"),
        "domain": first(form, "domain"),
        "q": first(form, "q"),
        "overdue": "true" if first(form, "overdue") else None,
    }
    page, domains = await asyncio.gather(
        api.get("catalog", "/v1/needs", **filters, cursor=first(form, "cursor"), limit=limit),
        api.get("catalog", "/v1/domains"),
    )
    return {
        "page": page,
        "filters": filters,
        "domains": domains,
        "statuses": STATUSES + (MODERATED if caller.operates else ()),
        "frequencies": FREQUENCIES,
        "urgencies": URGENCIES,
    }


async def need_page(api: PlatformApi, caller: Caller, need_id: str) -> dict[str, Any]:
    """A need with its requesters, answer, history and thread, and which forms the caller gets."""
    need, history, comments, following, deliveries = await asyncio.gather(
        api.get("catalog", _need_path(need_id)),
        api.get("catalog", _need_path(need_id, "/history")),
        api.get("catalog", _need_path(need_id, "/comments")),
        api.get("catalog", _need_path(need_id, "/follow")),
        api.get("catalog", _need_path(need_id, "/follow/deliveries"), limit=20),
    )
    requesters = {r["principal_id"] for r in need["requesters"]}
    waiting = need["status"] in WAITING
    answers = caller.operates or (
        caller.kind in ("department", "approver") and caller.department_id == need["department_id"]
    )
    return {
        "need": need,
        "history": history,
        "comments": comments,
        "following": following,
        "deliveries": deliveries,
        "may_join": waiting and caller.id not in requesters,
        "may_answer": waiting and answers,
        "may_route": waiting and caller.operates,
        "may_moderate": need["status"] == "held" and caller.operates,
        "may_hide": caller.operates,
        "may_comment": need["status"] not in MODERATED,
    }


def need_create(form: Form) -> dict[str, Any]:
    return {
        "title": first(form, "title") or "",
        "description": first(form, "description") or "",
        "domains": [d for d in form.get("domains", []) if d],
        "data_wanted": first(form, "data_wanted") or "",
        "purpose": first(form, "purpose") or "",
        "purpose_category": first(form, "purpose_category") or "",
        "serves": first(form, "serves") or "",
        "frequency": first(form, "frequency") or "",
        "urgency": first(form, "urgency") or "",
    }


async def file_need(api: PlatformApi, form: Form) -> dict[str, Any]:
    filed: dict[str, Any] = await api.post("catalog", "/v1/needs", need_create(form))
    return filed


ACTIONS = (
    "join",
    "unfollow",
    "comments",
    "accept",
    "reject",
    "route",
    "offer",
    "commit",
    "decline",
)


def action_body(action: str, form: Form) -> dict[str, Any]:
    """The body of an action on a need, as the person typed it (the catalog checks it)."""
    bodies: dict[str, dict[str, Any]] = {
        "join": {"purpose": first(form, "purpose") or ""},
        "comments": {"body": first(form, "body") or ""},
        "reject": {"reason": first(form, "reason") or ""},
        "decline": {"reason": first(form, "reason") or ""},
        "route": {"department_id": first(form, "department_id") or ""},
        "offer": {"dataset_id": first(form, "dataset_id") or "", "note": first(form, "note")},
        "commit": {
            "commit_by": first(form, "commit_by") or "",
            "dataset_id": first(form, "dataset_id"),
            "note": first(form, "note"),
        },
    }
    return bodies.get(action, {})


def follow_body(form: Form) -> dict[str, Any]:
    """Follow, with the webhook typed (none: following removes the webhook set before)."""
    url = (first(form, "webhook_url") or "").strip()
    return {"webhook": {"url": url}} if url else {}


async def follow(api: PlatformApi, need_id: str, form: Form) -> dict[str, Any]:
    """Follow a need; with a webhook, the answer holds its signing secret, shown this once."""
    followed: dict[str, Any] = await api.post("catalog", _need_path(need_id, "/follow"), follow_body(form))
    return followed


async def act(api: PlatformApi, need_id: str, action: str, form: Form) -> dict[str, Any]:
    answer: dict[str, Any] = await api.post(
        "catalog", _need_path(need_id, f"/{action}"), action_body(action, form)
    )
    return answer


async def hide_comment(api: PlatformApi, need_id: str, comment_id: str, form: Form) -> dict[str, Any]:
    path = _need_path(need_id, api_path("/comments/{comment_id}/hide", comment_id=comment_id))
    hidden: dict[str, Any] = await api.post("catalog", path, {"reason": first(form, "reason") or ""})
    return hidden


async def candidates(api: PlatformApi, caller: Caller) -> dict[str, Any]:
    """Operators: the catalog searches that found nothing, most asked first."""
    require_operator(caller)
    return {"candidates": await api.get("catalog", "/v1/needs/candidates", limit=100)}


def resident_body(form: Form) -> dict[str, Any]:
    body = {
        "title": first(form, "title") or "",
        "description": first(form, "description") or "",
        "domains": [d for d in form.get("domains", []) if d],
        "data_wanted": first(form, "data_wanted") or "",
        "serves": first(form, "serves") or "",
        "frequency": first(form, "frequency") or "medium",
        "urgency": first(form, "urgency") or "normal",
    }
    if contact := first(form, "contact"):
        body["contact"] = contact
    return body


async def post_resident_need(http: httpx.AsyncClient, client_address: str, form: Form) -> dict[str, Any]:
    """A resident's need, posted without a key; the catalog counts it against the resident's
    address (forwarded, the console being the proxy in front of it)."""
    response = await http.post(
        "/catalog/v1/needs/residents",
        json=resident_body(form),
        headers={"Accept-Language": i18n.tag(), "X-Forwarded-For": client_address},
    )
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"title": response.reason_phrase, "detail": response.text[:500]}
        raise ApiError("catalog", response.status_code, problem)
    posted: dict[str, Any] = response.json()
    return posted
