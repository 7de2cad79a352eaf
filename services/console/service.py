"""What each console page shows, assembled from the services' APIs.

Each function takes the :class:`PlatformApi` of the person logged in and returns what its template
renders. The console decides which pages to offer to which kind of principal (an approver's queue,
an operator's overview); what a page may contain is still decided by the services, which see the
same key.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

from services.common import i18n
from services.console import charts, contract_diff, forms
from services.console.audit_view import audit_rows
from services.console.exceptions import NotForYourRole
from services.console.forms import Form, approval, first
from services.console.gateway import PlatformApi, api_path

ADMIN = "admin"
APPROVERS = frozenset({"approver", "admin"})
OPERATORS = frozenset({"operator", "admin"})
EVALUATION_READERS = frozenset({"evaluator", "operator", "admin"})
"""Who reads every scenario's evaluation: the work list, the reports, the verification of one."""
WORST_SHOWN = 10
WEBHOOK_DELIVERIES_SHOWN = 20


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

    @property
    def is_admin(self) -> bool:
        return self.kind == ADMIN

    @property
    def is_department(self) -> bool:
        return self.kind == "department"

    @property
    def is_evaluator(self) -> bool:
        """Reads evaluation evidence and records verdicts; never reads record data."""
        return self.kind == "evaluator"

    @property
    def reads_evaluations(self) -> bool:
        return self.kind in EVALUATION_READERS


async def who_is(api: PlatformApi) -> Caller:
    me = await api.get("catalog", "/v1/me")
    return Caller(id=me["id"], kind=me["kind"], name=me["name"], department_id=me.get("department_id"))


def require_approver(caller: Caller) -> None:
    if not caller.approves:
        raise NotForYourRole(i18n._("The access request queue is for approvers and administrators."))


def require_operator(caller: Caller) -> None:
    if not caller.operates:
        raise NotForYourRole(i18n._("The operator overview is for operators and administrators."))


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise NotForYourRole(
            i18n._("Domains, departments, principals and scenarios are managed by administrators.")
        )


def require_grant_decider(caller: Caller) -> None:
    if not caller.approves:
        raise NotForYourRole(i18n._("Grants are changed by approvers and administrators."))


def require_publisher(caller: Caller) -> None:
    if not (caller.is_department or caller.is_admin):
        raise NotForYourRole(i18n._("Datasets are registered by their departments and by administrators."))


def require_scenario(caller: Caller) -> None:
    if not caller.is_scenario:
        raise NotForYourRole(i18n._("Only a scenario asks for access and subscribes, for itself."))


def require_keys_of(caller: Caller, principal_id: str) -> None:
    """An admin manages every principal's keys, a department its own (docs/authorization.md)."""
    if not (caller.is_admin or (caller.is_department and caller.id == principal_id)):
        raise NotForYourRole(i18n._("Keys are managed by administrators, and by a department for itself."))


def require_own_scenario(caller: Caller, scenario_id: str) -> None:
    if caller.is_scenario and caller.id != scenario_id:
        raise NotForYourRole(i18n._("A scenario sees its own grants, subscriptions and usage only."))


# --- catalog -------------------------------------------------------------------------------------


FACETS = ("domain", "department", "classification", "status", "quality_band", "tag")
"""The facets the catalog counts for a search, in the order a search page shows them."""


async def search_datasets(api: PlatformApi, form: Form, limit: int) -> dict[str, Any]:
    """A page of the catalog search with the facet counts of the whole query, each value a link
    that narrows the query to it (or, for the value chosen, widens it again)."""
    filters = {name: first(form, name) for name in ("q", *FACETS, "cursor")}
    page, domains = await asyncio.gather(
        api.get("catalog", "/v1/datasets", limit=limit, facets="true", **filters),
        api.get("catalog", "/v1/domains"),
    )
    return {"filters": filters, "page": page, "domains": domains, "facets": facet_sections(filters, page)}


def facet_sections(filters: Mapping[str, str | None], page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each facet with its values, counts and links (the query of each link, without the cursor:
    a narrower query starts at its first page)."""
    sections = []
    kept = {name: value for name, value in filters.items() if value and name != "cursor"}
    for name in FACETS:
        values = []
        for count in (page.get("facets") or {}).get(name) or []:
            chosen = kept.get(name) == count["value"]
            query = {key: value for key, value in kept.items() if key != name}
            if not chosen:
                query[name] = count["value"]
            values.append({**count, "chosen": chosen, "query": urlencode(query)})
        if values:
            sections.append({"name": name, "values": values})
    return sections


def schema_org_dataset(dataset: Mapping[str, Any], publisher: Mapping[str, Any], url: str) -> dict[str, Any]:
    """A dataset as schema.org ``Dataset`` JSON-LD, what search engines (Google Dataset Search)
    read to list it: name, description, keywords, publisher, dates, version, access."""
    description = dataset.get("description") or i18n._(
        "%(title)s: data of the %(domain)s domain published by %(publisher)s on citybase."
    ) % {"title": dataset["title"], "domain": dataset["domain_id"], "publisher": publisher["name"]}
    described: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "@id": url,
        "url": url,
        "identifier": dataset["id"],
        "name": dataset["title"],
        "description": description,
        "keywords": list(dataset.get("tags") or []),
        "publisher": {"@type": "GovernmentOrganization", "name": publisher["name"]},
        "dateCreated": dataset.get("created_at"),
        "dateModified": dataset.get("updated_at"),
        "inLanguage": i18n.tag(),
        "isAccessibleForFree": True,
    }
    if dataset.get("current_version"):
        described["version"] = dataset["current_version"]
    if dataset.get("classification") != "open":
        described["conditionsOfAccess"] = i18n._(
            "Records are delivered to an approved application scenario under a grant."
        )
    return described


async def public_datasets(api: PlatformApi, form: Form, limit: int, url: str) -> dict[str, Any]:
    """The public catalog search (what a visitor without a key may see), with the facets, and the
    listed datasets as a schema.org ``DataCatalog``."""
    page = await search_datasets(api, form, limit)
    page["jsonld"] = {
        "@context": "https://schema.org",
        "@type": "DataCatalog",
        "url": url,
        "name": i18n._("The city's open data catalog"),
        "dataset": [
            {
                "@type": "Dataset",
                "name": d["title"],
                "identifier": d["id"],
                "description": d["description"] or d["title"],
            }
            for d in page["page"]["items"]
        ],
    }
    return page


async def public_dataset_page(api: PlatformApi, dataset_id: str, url: str) -> dict[str, Any]:
    """A public dataset's record (title, description, publisher, contract version, quality) and its
    schema.org JSON-LD; a dataset that is not public is the catalog's 401 (the login page)."""
    dataset = await api.get("catalog", api_path("/v1/datasets/{dataset_id}", dataset_id=dataset_id))
    publisher = await api.get(
        "catalog", api_path("/v1/departments/{department_id}", department_id=dataset["owner_department_id"])
    )
    return {"dataset": dataset, "publisher": publisher, "jsonld": schema_org_dataset(dataset, publisher, url)}


async def dataset_page(
    api: PlatformApi, caller: Caller, dataset_id: str, old_version: str | None, new_version: str | None
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
        # A scenario asks for itself, for a dataset that has a contract; the catalog decides the rest.
        "may_request": caller.is_scenario and current is not None,
        "purpose_categories": forms.PURPOSE_CATEGORIES,
    }


def examples(values: Sequence[Any] | None) -> str:
    """The failing values a rule reports, for its row: a null (a missing value) says nothing
    next to the count of missing values, so it is left out, and "—" stands for no example."""
    shown = [str(value) for value in values or () if value is not None]
    return ", ".join(shown) or "—"


def quality_chart(history: Mapping[str, Any] | None) -> charts.LineChart:
    points = (history or {}).get("points") or []
    return charts.score_chart(
        [(datetime.fromisoformat(p["at"]), (p.get("scores") or {}).get("overall")) for p in points]
    )


# --- registering datasets ------------------------------------------------------------------------


async def registration_form(caller: Caller, document: forms.ContractDocument | None = None) -> dict[str, Any]:
    """The form to paste or upload an ODCS contract, with the document sent last when it is shown
    again (refused, or previewed before it is confirmed)."""
    require_publisher(caller)
    return {"preview": None, "document": document}


async def registration_preview(
    api: PlatformApi, caller: Caller, document: forms.ContractDocument
) -> dict[str, Any] | None:
    """What registering ``document`` would change, for a dataset that exists: the catalog's
    compatibility verdict (its dry run) and the contract's lines as they change from the current
    version. ``None`` for a new dataset, which has nothing to compare with."""
    require_publisher(caller)
    if document.dataset_id is None:
        return None
    path = api_path("/v1/datasets/{dataset_id}", dataset_id=document.dataset_id)
    dataset = await api.optional("catalog", path)
    if dataset is None:
        return None
    report, current = await asyncio.gather(
        api.post_document(
            "catalog", f"{path}/contract-versions/check", document.content, document.media_type
        ),
        api.text("catalog", f"{path}/contract"),
    )
    lines = difflib.unified_diff(
        current.splitlines(),
        document.text.splitlines(),
        fromfile=str(dataset.get("current_version") or ""),
        tofile=document.version or "",
        lineterm="",
    )
    return {"dataset": dataset, "report": report, "lines": list(lines)}


async def register_contract(
    api: PlatformApi, caller: Caller, document: forms.ContractDocument
) -> dict[str, Any]:
    """Register the contract: the dataset it describes if new, else its next version (the catalog
    decides the domain's owner, the contract's validity and the version's compatibility)."""
    require_publisher(caller)
    registered: dict[str, Any] = await api.post_document(
        "catalog", "/v1/contracts", document.content, document.media_type
    )
    return registered


async def register_or_preview(
    api: PlatformApi, caller: Caller, document: forms.ContractDocument, confirmed: bool
) -> dict[str, Any]:
    """A new dataset is registered at once; a new version of an existing one is first shown with
    what it changes (``preview``), and registered once the person confirms (``registered``)."""
    preview = None if confirmed else await registration_preview(api, caller, document)
    if preview is not None:
        return {"preview": preview, "document": document}
    return {"registered": await register_contract(api, caller, document)}


# --- access requests and grants ------------------------------------------------------------------


async def request_queue(api: PlatformApi, caller: Caller, form: Form, limit: int) -> dict[str, Any]:
    require_approver(caller)
    status = first(form, "status") or "pending"
    page = await api.get(
        "catalog",
        "/v1/access-requests",
        status=None if status == "all" else status,
        dataset_id=first(form, "dataset_id"),
        cursor=first(form, "cursor"),
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
        "may_withdraw": caller.id == request["scenario_id"] and request["status"] == "pending",
        "mask_choices": list(forms.MASK_CHOICES),
    }


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
        {"reason": first(form, "reason") or ""},
    )
    return decided


async def grant_page(api: PlatformApi, caller: Caller, grant_id: str) -> dict[str, Any]:
    """A grant's terms and, for those who may change it, the forms to suspend, resume, revoke or
    narrow it, with each granted field's sensitivity in the grant's contract version."""
    grant = await api.get("catalog", api_path("/v1/grants/{grant_id}", grant_id=grant_id))
    version = await api.optional(
        "catalog",
        api_path(
            "/v1/datasets/{dataset_id}/contract-versions/{version}",
            dataset_id=grant["dataset_id"],
            version=grant["contract_version"],
        ),
    )
    rows = {row["name"]: row for row in contract_diff.field_rows(version or {})}
    return {
        "grant": grant,
        "granted": [rows.get(name, {"name": name, "sensitive": False}) for name in grant["fields"]],
        "may_change": caller.approves and grant["status"] in ("active", "suspended", "expired"),
        "mask_choices": list(forms.MASK_CHOICES),
        "expires_on": datetime.fromisoformat(grant["expires_at"]).date().isoformat(),
    }


GRANT_ACTIONS = ("suspend", "resume", "revoke")


async def change_grant_status(
    api: PlatformApi, caller: Caller, grant_id: str, action: str, form: Form
) -> dict[str, Any]:
    """Suspend, resume or revoke a grant, with the reason the audit trail keeps."""
    require_grant_decider(caller)
    if action not in GRANT_ACTIONS:
        raise ValueError(f"unknown grant action {action!r}")
    path = api_path("/v1/grants/{grant_id}/", grant_id=grant_id) + action
    changed: dict[str, Any] = await api.post("catalog", path, forms.reason(form))
    return changed


async def narrow_grant(api: PlatformApi, caller: Caller, grant_id: str, form: Form) -> dict[str, Any]:
    """New terms for a grant (``PATCH``): the catalog takes only narrower ones."""
    require_grant_decider(caller)
    path = api_path("/v1/grants/{grant_id}", grant_id=grant_id)
    grant = await api.get("catalog", path)
    body = forms.grant_update(form, datetime.fromisoformat(grant["expires_at"]))
    changed: dict[str, Any] = await api.patch("catalog", path, body)
    return changed


async def file_request(api: PlatformApi, caller: Caller, dataset_id: str, form: Form) -> dict[str, Any]:
    """The scenario's access request for a dataset, from the form on the dataset page."""
    require_scenario(caller)
    filed: dict[str, Any] = await api.post(
        "catalog", "/v1/access-requests", forms.access_request_create(dataset_id, form)
    )
    return filed


async def withdraw(api: PlatformApi, caller: Caller, request_id: str, form: Form) -> dict[str, Any]:
    body = {"reason": reason} if (reason := first(form, "reason")) else {}
    path = api_path("/v1/access-requests/{request_id}/withdraw", request_id=request_id)
    withdrawn: dict[str, Any] = await api.post("catalog", path, body)
    return withdrawn


# --- scenarios -----------------------------------------------------------------------------------


async def scenarios(api: PlatformApi, caller: Caller) -> dict[str, Any]:
    listed = await api.get("catalog", "/v1/scenarios")
    if caller.is_scenario:
        listed = [s for s in listed if s["id"] == caller.id]
    return {"scenarios": listed, "may_create": caller.is_admin}


async def create_scenario(api: PlatformApi, caller: Caller, form: Form) -> dict[str, Any]:
    require_admin(caller)
    created: dict[str, Any] = await api.post("catalog", "/v1/scenarios", forms.scenario_create(form))
    return created


async def set_scenario_status(
    api: PlatformApi, caller: Caller, scenario_id: str, form: Form
) -> dict[str, Any]:
    """Suspend, resume (``active``) or retire a scenario; its keys follow within a second."""
    require_admin(caller)
    path = api_path("/v1/scenarios/{scenario_id}", scenario_id=scenario_id)
    changed: dict[str, Any] = await api.patch("catalog", path, {"status": first(form, "status") or ""})
    return changed


async def issue_scenario_key(
    api: PlatformApi, caller: Caller, scenario_id: str, form: Form
) -> dict[str, Any]:
    require_admin(caller)
    path = api_path("/v1/scenarios/{scenario_id}/keys", scenario_id=scenario_id)
    issued: dict[str, Any] = await api.post("catalog", path, forms.key_create(form))
    return issued


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
    keys = None
    if caller.is_admin:
        keys = await api.optional(
            "catalog", api_path("/v1/principals/{principal_id}/keys", principal_id=scenario_id)
        )
    subscribed = {s["dataset"] for s in subscriptions or []}
    granted = sorted({g["dataset_id"] for g in grants["items"] if g["status"] == "active"})
    stages = await api.get("catalog", api_path("/v1/scenarios/{scenario_id}/stages", scenario_id=scenario_id))
    return {
        "scenario": scenario,
        "stages": stages,
        "stage_choices": forms.SCENARIO_STAGES,
        # Operators move every stage; the scenario itself starts building once approved. The
        # catalog decides which moves are allowed and says why it refuses one.
        "may_move": caller.operates or (caller.id == scenario_id and scenario.get("stage") == "approved"),
        "grants": grants["items"],
        "requests": requests["items"],
        "subscriptions": subscriptions,
        "usage": usage,
        "keys": keys,
        "statuses": forms.SCENARIO_STATUSES,
        # The scenario subscribes itself to a dataset of an active grant it has no subscription to.
        "may_subscribe": {
            g["dataset_id"]
            for g in grants["items"]
            if caller.id == scenario_id and g["status"] == "active" and g["dataset_id"] not in subscribed
        },
        # A webhook pushes a granted dataset to the scenario's receiver, next to any pull subscription.
        "webhook_datasets": granted if caller.id == scenario_id else [],
        "positions": forms.POSITIONS,
    }


async def change_stage(api: PlatformApi, scenario_id: str, form: Form) -> dict[str, Any]:
    """Move a scenario to another stage with a reason; the catalog decides who may and which moves."""
    path = api_path("/v1/scenarios/{scenario_id}/stage", scenario_id=scenario_id)
    moved: dict[str, Any] = await api.post("catalog", path, forms.stage_change(form))
    return moved


# --- the scenario programme ----------------------------------------------------------------------


async def opportunity_lists(api: PlatformApi) -> dict[str, Any]:
    """The published opportunity lists and their openings, as anyone reads them without a key."""
    listed = await api.get("catalog", "/v1/opportunity-lists")
    return {"lists": [item for item in listed["items"] if item["status"] == "published"]}


async def proposals_page(api: PlatformApi, opening_id: str) -> dict[str, Any]:
    """An opening's proposals side by side, for its owning department (the catalog refuses others)."""
    path = api_path("/v1/openings/{opening_id}/proposals", opening_id=opening_id)
    comparison: dict[str, Any] = await api.get("catalog", path)
    rows = [
        ("applicant_id", i18n._("Applicant")),
        ("team", i18n._("Team")),
        ("approach", i18n._("Approach")),
        ("objectives", i18n._("Objectives")),
        ("timeline", i18n._("Timeline")),
        ("duration_days", i18n._("Days")),
        ("status", i18n._("Status")),
    ]
    return {**comparison, "rows": rows, "may_select": comparison["opening"]["status"] == "open"}


async def select_proposals(api: PlatformApi, opening_id: str, form: Form) -> dict[str, Any]:
    path = api_path("/v1/openings/{opening_id}/selection", opening_id=opening_id)
    selected: dict[str, Any] = await api.post("catalog", path, forms.selection(form))
    return selected


# --- subscriptions -------------------------------------------------------------------------------


async def subscription_page(api: PlatformApi, caller: Caller, subscription_id: str) -> dict[str, Any]:
    """A subscription, whether it delivers now and why not, and for a webhook what its receiver
    answered to the latest pushes."""
    path = api_path("/v1/subscriptions/{subscription_id}", subscription_id=subscription_id)
    subscription = await api.get("feeds", path)
    deliveries = None
    if subscription.get("mode") == "webhook":
        deliveries = (
            await api.optional("feeds", f"{path}/deliveries", limit=WEBHOOK_DELIVERIES_SHOWN) or {}
        ).get("items", [])
    return {
        "subscription": subscription,
        "deliveries": deliveries,
        # Feeds says whether it delivers now and why not (its grant comes first, then a pause).
        "delivery": "delivering" if subscription.get("delivering") else str(subscription.get("status")),
        "positions": forms.POSITIONS,
        "may_change": caller.id == subscription.get("scenario_id") or caller.is_admin,
    }


async def create_subscription(api: PlatformApi, caller: Caller, form: Form) -> dict[str, Any]:
    """A pull subscription of the scenario to a dataset it holds an active grant for."""
    require_scenario(caller)
    created: dict[str, Any] = await api.post("feeds", "/v1/subscriptions", forms.subscription_create(form))
    return created


async def create_webhook(api: PlatformApi, caller: Caller, form: Form) -> dict[str, Any]:
    """A webhook subscription: feeds pushes the granted dataset's batches to the scenario's https
    URL, signed with a secret it answers once, here."""
    require_scenario(caller)
    created: dict[str, Any] = await api.post("feeds", "/v1/subscriptions", forms.webhook_create(form))
    return created


SUBSCRIPTION_ACTIONS = ("pause", "resume")


async def change_subscription(
    api: PlatformApi, subscription_id: str, action: str, form: Form
) -> dict[str, Any] | None:
    """Pause, resume, move (``position``: replay to the earliest or the latest record) or delete."""
    path = api_path("/v1/subscriptions/{subscription_id}", subscription_id=subscription_id)
    if action == "delete":
        await api.delete("feeds", path)
        return None
    if action == "position":
        moved: dict[str, Any] = await api.post("feeds", f"{path}/replay", forms.replay(form))
        return moved
    if action not in SUBSCRIPTION_ACTIONS:
        raise ValueError(f"unknown subscription action {action!r}")
    changed: dict[str, Any] = await api.post("feeds", f"{path}/{action}", {})
    return changed


# --- administration: domains, departments, principals, keys --------------------------------------


async def admin_page(api: PlatformApi, caller: Caller) -> dict[str, Any]:
    require_admin(caller)
    domains, departments, principals = await asyncio.gather(
        api.get("catalog", "/v1/domains"),
        api.get("catalog", "/v1/departments"),
        api.get("catalog", "/v1/principals"),
    )
    return {
        "domains": domains,
        "departments": departments,
        "principals": principals,
        "principal_kinds": forms.PRINCIPAL_KINDS,
        "department_kinds": forms.DEPARTMENT_KINDS,
    }


ADMIN_FORMS = {
    "domain": ("/v1/domains", forms.domain_create),
    "department": ("/v1/departments", forms.department_create),
    "principal": ("/v1/principals", forms.principal_create),
}


async def create(api: PlatformApi, caller: Caller, what: str, form: Form) -> dict[str, Any]:
    """A domain, a department or a principal, from its form on the administration page."""
    require_admin(caller)
    path, body = ADMIN_FORMS[what]
    created: dict[str, Any] = await api.post("catalog", path, body(form))
    return created


def _keys_path(principal_id: str) -> str:
    return api_path("/v1/principals/{principal_id}/keys", principal_id=principal_id)


async def keys_page(api: PlatformApi, caller: Caller, principal_id: str) -> dict[str, Any]:
    """A principal and its keys (live and revoked), with the forms to issue and revoke them."""
    require_keys_of(caller, principal_id)
    keys, principal = await asyncio.gather(
        api.get("catalog", _keys_path(principal_id)),
        api.get("catalog", api_path("/v1/principals/{principal_id}", principal_id=principal_id)),
    )
    return {"principal": principal, "keys": keys}


async def department_page(api: PlatformApi, caller: Caller) -> dict[str, Any]:
    """ "My department": the department a publisher speaks for, and its own keys."""
    if not caller.is_department:
        raise NotForYourRole(i18n._("“My department” is the page of a department's own principal."))
    page = await keys_page(api, caller, caller.id)
    department = None
    if caller.department_id:
        department = await api.optional(
            "catalog", api_path("/v1/departments/{department_id}", department_id=caller.department_id)
        )
    return {**page, "department": department}


async def issue_key(api: PlatformApi, caller: Caller, principal_id: str, form: Form) -> dict[str, Any]:
    require_keys_of(caller, principal_id)
    issued: dict[str, Any] = await api.post("catalog", _keys_path(principal_id), forms.key_create(form))
    return issued


async def revoke_key(api: PlatformApi, caller: Caller, principal_id: str, prefix: str) -> dict[str, Any]:
    """Revoke a key, and with it every key minted from it (the catalog answers which)."""
    require_keys_of(caller, principal_id)
    revoked: dict[str, Any] = (
        await api.delete("catalog", _keys_path(principal_id) + api_path("/{prefix}", prefix=prefix)) or {}
    )
    return revoked


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


def recent_rate(history: Mapping[str, Any] | None) -> float | None:
    """Records per second that reached the dataset lately, as quality counts it over the period's
    windows (``records_per_s`` of the history); ``None`` when quality has no history to tell."""
    if history is None:
        return None
    rate = history.get("records_per_s")
    return float(rate) if isinstance(rate, (int, float)) else None


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
    filters = {name: first(form, name) for name in AUDIT_FILTERS}
    period = {"from": first(form, "from"), "to": first(form, "to")}
    page = await api.get(
        "catalog", "/v1/audit", limit=limit, cursor=first(form, "cursor"), **filters, **period
    )
    return {"filters": {**filters, **period}, "page": page, "rows": audit_rows(page["items"])}
