"""What each console page shows, assembled from the services' APIs.

Each function takes the :class:`PlatformApi` of the person logged in and returns what its template
renders. The console decides which pages to offer to which kind of principal (an approver's queue,
an operator's overview); what a page may contain is still decided by the services, which see the
same key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from services.common import i18n
from services.console import charts, contract_diff
from services.console.audit_view import audit_rows
from services.console.exceptions import NotForYourRole
from services.console.gateway import PlatformApi, api_path

Form = Mapping[str, Sequence[str]]

APPROVERS = frozenset({"approver", "admin"})
OPERATORS = frozenset({"operator", "admin"})
MASK_CHOICES = {
    "hash": "hash",
    "redact": "redact",
    "partial": {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4},
}
"""The masks an approver picks from in the console, as the catalog's grant terms spell them."""
WORST_SHOWN = 10


@dataclass(frozen=True)
class Caller:
    """The principal of the key in the session cookie, as the catalog knows it (``GET /v1/me``)."""

    id: str
    kind: str
    name: str
    department_id: str | None

    @property
    def approves(self) -> bool:
        return self.kind in APPROVERS

    @property
    def operates(self) -> bool:
        return self.kind in OPERATORS

    @property
    def is_scenario(self) -> bool:
        return self.kind == "scenario"


async def who_is(api: PlatformApi) -> Caller:
    me = await api.get("catalog", "/v1/me")
    return Caller(id=me["id"], kind=me["kind"], name=me["name"], department_id=me.get("department_id"))


def require_approver(caller: Caller) -> None:
    if not caller.approves:
        raise NotForYourRole(i18n._("The access request queue is for approvers and administrators."))


def require_operator(caller: Caller) -> None:
    if not caller.operates:
        raise NotForYourRole(i18n._("The operator overview is for operators and administrators."))


def require_own_scenario(caller: Caller, scenario_id: str) -> None:
    if caller.is_scenario and caller.id != scenario_id:
        raise NotForYourRole(i18n._("A scenario sees its own grants, subscriptions and usage only."))


# --- catalog -------------------------------------------------------------------------------------


async def search_datasets(api: PlatformApi, form: Form, limit: int) -> dict[str, Any]:
    filters = {name: _first(form, name) for name in ("q", "domain", "classification", "status", "cursor")}
    page, domains = await asyncio.gather(
        api.get("catalog", "/v1/datasets", limit=limit, **filters), api.get("catalog", "/v1/domains")
    )
    return {"filters": filters, "page": page, "domains": domains}


async def dataset_page(
    api: PlatformApi, dataset_id: str, old_version: str | None, new_version: str | None
) -> dict[str, Any]:
    """A dataset with its contract (fields and sensitivity), versions and a diff between two of them,
    quality now and over the last day with the evidence of each rule, and who uses it."""
    path = api_path("/v1/datasets/{dataset_id}", dataset_id=dataset_id)
    dataset, versions = await asyncio.gather(
        api.get("catalog", path), api.get("catalog", f"{path}/contract-versions")
    )
    names = [v["version"] for v in versions]
    current = dataset.get("current_version") or (names[-1] if names else None)
    new_version = new_version if new_version in names else current
    if old_version not in names:
        earlier = names[: names.index(new_version)] if new_version in names else []
        old_version = earlier[-1] if earlier else None
    wanted = {v for v in (current, old_version, new_version) if v}
    documents, quality, history, usage = await asyncio.gather(
        asyncio.gather(
            *(
                api.get("catalog", path + api_path("/contract-versions/{version}", version=v))
                for v in sorted(wanted)
            )
        ),
        api.optional("quality", f"{path}/quality"),
        api.optional("quality", f"{path}/quality/history"),
        api.optional("quality", api_path("/v1/utilization/datasets/{dataset_id}", dataset_id=dataset_id)),
    )
    by_version = {d["version"]: d for d in documents}
    diff = None
    if old_version and new_version and old_version != new_version:
        diff = contract_diff.diff(by_version[old_version], by_version[new_version])
    return {
        "dataset": dataset,
        "versions": versions,
        "current": by_version.get(current) if current else None,
        "fields": contract_diff.field_rows(by_version[current]) if current else [],
        "old_version": old_version,
        "new_version": new_version,
        "diff": diff,
        "quality": quality,
        "chart": quality_chart(history),
        "usage": usage,
    }


def quality_chart(history: Mapping[str, Any] | None) -> charts.LineChart:
    points = (history or {}).get("points") or []
    return charts.score_chart(
        [(datetime.fromisoformat(p["at"]), (p.get("scores") or {}).get("overall")) for p in points]
    )


# --- access requests and grants ------------------------------------------------------------------


async def request_queue(api: PlatformApi, caller: Caller, form: Form, limit: int) -> dict[str, Any]:
    require_approver(caller)
    status = _first(form, "status") or "pending"
    page = await api.get(
        "catalog",
        "/v1/access-requests",
        status=None if status == "all" else status,
        dataset_id=_first(form, "dataset_id"),
        cursor=_first(form, "cursor"),
        limit=limit,
    )
    return {"status": status, "page": page}


async def request_page(api: PlatformApi, caller: Caller, request_id: str) -> dict[str, Any]:
    """A request with what an approver needs to decide: the dataset, the requested fields with
    their sensitivity in the contract version asked for, and the scenario asking."""
    request = await api.get("catalog", api_path("/v1/access-requests/{request_id}", request_id=request_id))
    dataset_path = api_path("/v1/datasets/{dataset_id}", dataset_id=request["dataset_id"])
    dataset, version, scenario = await asyncio.gather(
        api.get("catalog", dataset_path),
        api.optional(
            "catalog",
            dataset_path + api_path("/contract-versions/{version}", version=request["contract_version"]),
        ),
        api.optional("catalog", api_path("/v1/scenarios/{scenario_id}", scenario_id=request["scenario_id"])),
    )
    rows = {row["name"]: row for row in contract_diff.field_rows(version or {})}
    requested = [rows.get(name, {"name": name, "sensitive": False}) for name in request["fields"]]
    grant = None
    if request.get("grant_id"):
        grant = await api.optional("catalog", api_path("/v1/grants/{grant_id}", grant_id=request["grant_id"]))
    return {
        "request": request,
        "dataset": dataset,
        "scenario": scenario,
        "requested": requested,
        "grant": grant,
        "may_decide": caller.approves and request["status"] == "pending",
        "mask_choices": list(MASK_CHOICES),
    }


def approval(form: Form) -> dict[str, Any]:
    """The approval body (``AccessRequestApproval``) from the approve form: the fields kept, a mask
    per field where one was picked, the reason, and the optional row filter, duration and quota.
    The catalog checks every term; the console only translates the form."""
    fields = [name for name in form.get("field", []) if name]
    masking = {
        name: MASK_CHOICES[choice]
        for name in fields
        if (choice := _first(form, f"mask.{name}") or "") in MASK_CHOICES
    }
    body: dict[str, Any] = {"reason": _first(form, "reason") or "", "fields": fields}
    if masking:
        body["masking"] = masking
    if row_filter := _first(form, "row_filter"):
        body["row_filter"] = row_filter
    for name in ("duration_days", "quota_records_per_day"):
        if (value := _first(form, name)) is not None:
            body[name] = int(value) if value.isdigit() else value
    return body


async def approve(api: PlatformApi, caller: Caller, request_id: str, form: Form) -> dict[str, Any]:
    require_approver(caller)
    decided: dict[str, Any] = await api.post(
        "catalog", api_path("/v1/access-requests/{request_id}/approve", request_id=request_id), approval(form)
    )
    return decided


async def reject(api: PlatformApi, caller: Caller, request_id: str, form: Form) -> dict[str, Any]:
    require_approver(caller)
    decided: dict[str, Any] = await api.post(
        "catalog",
        api_path("/v1/access-requests/{request_id}/reject", request_id=request_id),
        {"reason": _first(form, "reason") or ""},
    )
    return decided


async def grant_page(api: PlatformApi, grant_id: str) -> dict[str, Any]:
    grant = await api.get("catalog", api_path("/v1/grants/{grant_id}", grant_id=grant_id))
    return {"grant": grant}


# --- scenarios -----------------------------------------------------------------------------------


async def scenarios(api: PlatformApi, caller: Caller) -> dict[str, Any]:
    listed = await api.get("catalog", "/v1/scenarios")
    if caller.is_scenario:
        listed = [s for s in listed if s["id"] == caller.id]
    return {"scenarios": listed}


async def scenario_page(api: PlatformApi, caller: Caller, scenario_id: str, limit: int) -> dict[str, Any]:
    """A scenario's grants, requests, subscriptions and use: only the scenario itself and the
    roles that oversee scenarios see them."""
    require_own_scenario(caller, scenario_id)
    scenario, grants, requests, usage = await asyncio.gather(
        api.get("catalog", api_path("/v1/scenarios/{scenario_id}", scenario_id=scenario_id)),
        api.get("catalog", "/v1/grants", scenario_id=scenario_id, limit=limit),
        api.get("catalog", "/v1/access-requests", scenario_id=scenario_id, limit=limit),
        api.optional("quality", api_path("/v1/utilization/scenarios/{scenario_id}", scenario_id=scenario_id)),
    )
    subscriptions = None
    # Feeds shows subscriptions to the scenario itself (and an admin); other roles see the
    # subscriptions the quality service metered, in ``usage``.
    if caller.id == scenario_id or caller.kind == "admin":
        listed = await api.optional("feeds", "/v1/subscriptions", limit=limit)
        subscriptions = [
            s for s in (listed or {}).get("items", []) if s.get("scenario_id", scenario_id) == scenario_id
        ]
    return {
        "scenario": scenario,
        "grants": grants["items"],
        "requests": requests["items"],
        "subscriptions": subscriptions,
        "usage": usage,
    }


# --- operations ----------------------------------------------------------------------------------


def ingest_totals(metrics: str) -> dict[str, dict[str, float]]:
    """Records ingest accepted and sent to the dead-letter topic since it started, per dataset,
    from its Prometheus exposition (``citybase_ingest_records_total``)."""
    totals: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(metrics):
        if family.name != "citybase_ingest_records":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and "dataset" in sample.labels:
                outcome = sample.labels.get("outcome", "")
                by_outcome = totals.setdefault(sample.labels["dataset"], {})
                by_outcome[outcome] = by_outcome.get(outcome, 0.0) + sample.value
    return totals


RATE_PERIOD = timedelta(minutes=5)


def recent_rate(history: Mapping[str, Any] | None, period: timedelta = RATE_PERIOD) -> float | None:
    """Records per second that reached the dataset (accepted or dead-lettered) over ``period``,
    from the quality windows that closed in it; ``None`` when quality has no history to tell."""
    if history is None:
        return None
    records = sum(int(point.get("records") or 0) for point in history.get("points", []))
    return round(records / period.total_seconds(), 2)


async def overview(api: PlatformApi, caller: Caller) -> dict[str, Any]:
    """Ingest per dataset (recent rate, accepted, dead-lettered), consumer lag, open SLA breaches,
    showcase-only scenarios and the worst-quality datasets."""
    require_operator(caller)
    rankings, utilization, idle, metrics = await asyncio.gather(
        api.get("quality", "/v1/quality/rankings"),
        api.get("quality", "/v1/utilization"),
        api.get("quality", "/v1/utilization/idle"),
        api.text("ingest", "/metrics"),
    )
    dataset_ids = sorted({d["dataset_id"] for d in utilization.get("datasets", [])})
    since = (datetime.now(UTC) - RATE_PERIOD).isoformat()
    paths = [api_path("/v1/datasets/{dataset_id}", dataset_id=d) for d in dataset_ids]
    latest, recent, usage = await asyncio.gather(
        asyncio.gather(*(api.optional("quality", f"{path}/quality") for path in paths)),
        asyncio.gather(
            *(api.optional("quality", f"{path}/quality/history", **{"from": since}) for path in paths)
        ),
        asyncio.gather(
            *(
                api.optional("quality", api_path("/v1/utilization/datasets/{dataset_id}", dataset_id=d))
                for d in dataset_ids
            )
        ),
    )
    totals = ingest_totals(metrics)
    rows = []
    breaches: list[dict[str, Any]] = []
    for dataset_id, quality, history, used in zip(dataset_ids, latest, recent, usage, strict=True):
        lags = [s.get("lag_records") for s in (used or {}).get("subscriptions", [])]
        measured = [lag for lag in lags if lag is not None]
        counts = totals.get(dataset_id, {})
        rows.append(
            {
                "dataset_id": dataset_id,
                "rate": recent_rate(history),
                "accepted": int(counts.get("accepted", 0)),
                "dead_lettered": int(counts.get("rejected", 0)),
                "lag": sum(measured) if measured else None,
                "freshness_s": (quality or {}).get("freshness_s"),
                "overall": ((quality or {}).get("scores") or {}).get("overall"),
            }
        )
        breaches.extend({"dataset_id": dataset_id, **b} for b in (quality or {}).get("sla_breaches", []))
    return {
        "ingest": rows,
        "breaches": breaches,
        "worst": rankings.get("items", [])[:WORST_SHOWN],
        "utilization": utilization,
        "idle": idle,
    }


AUDIT_FILTERS = ("actor", "action", "resource_type", "resource_id", "dataset", "department", "scenario")


async def audit_page(api: PlatformApi, form: Form, limit: int) -> dict[str, Any]:
    filters = {name: _first(form, name) for name in AUDIT_FILTERS}
    period = {"from": _first(form, "from"), "to": _first(form, "to")}
    page = await api.get(
        "catalog", "/v1/audit", limit=limit, cursor=_first(form, "cursor"), **filters, **period
    )
    return {"filters": {**filters, **period}, "page": page, "rows": audit_rows(page["items"])}


def _first(form: Form, name: str) -> str | None:
    values = form.get(name)
    value = values[0].strip() if values else None
    return value or None
