"""Attacks on authentication and authorization: forged and oversized credentials, another tenant's
ids, path traversal in ids, expired grants.

Each is refused (401, 403, 404 or 4xx validation; never a 5xx) with problem+json that leaks
nothing: no stack trace, SQL, file path, the key itself, or another tenant's ids. Another
scenario's grant, request or subscription is a 403 (the rule of docs/authorization.md; their ids
are random and unguessable) that names neither its owner nor its dataset. The catalog's refusals
are on its audit trail. The role matrix itself (each role on each operation, no key,
a revoked key) is tests/integration/test_authorization.py's; this reuses its principals.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.common.worker import wait_until
from services.feeds.runtime import FeedsRuntime
from tests.factories import feeds_grant_state, grant_record
from tests.support.platform import Platform

PROBLEM = "application/problem+json"
LEAKS = re.compile(
    r"Traceback|File \"|site-packages|/work/|/tmp/|sqlalchemy|psycopg|sqlite|SELECT |INSERT |UPDATE ",
    re.IGNORECASE,
)

# One operation of each service that needs a key (a scenario's for feeds).
PROTECTED = [
    ("GET", "/catalog/v1/datasets"),
    ("POST", "/ingest/v1/datasets/market.inspections/records"),
    ("GET", "/feeds/v1/subscriptions"),
    ("GET", "/quality/v1/datasets/market.inspections/quality"),
]


def _assert_refused(
    response: httpx.Response, statuses: Iterable[int], *, secrets: Iterable[str] = (), what: str = ""
) -> dict[str, Any]:
    label = f"{what}: {response.status_code} {response.text[:300]}"
    assert response.status_code in set(statuses), label
    assert response.headers.get("content-type") == PROBLEM, label
    text = response.text
    assert not LEAKS.search(text), label
    for secret in filter(None, secrets):
        assert secret not in text, f"{what}: {secret[:20]}... is echoed back"
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code and body["type"].startswith(
        "https://citybase.dev/problems/"
    )
    return body


def _quality_path(platform: Platform) -> str:
    paths = platform.app.state.services["quality"].openapi()["paths"]
    return next(f"/quality{p}" for p in paths if "{dataset_id}" in p).format(dataset_id="market.inspections")


# --- forged and oversized credentials -----------------------------------------------------------


def _forgeries(platform: Platform) -> dict[str, str]:
    real = platform.keys["market-publisher"]
    prefix, _, secret = real.rpartition("_")
    return {
        "empty bearer": "Bearer ",
        "bearer without a space": "Bearer" + real,
        "basic credentials": "Basic YWRtaW46YWRtaW4=",
        "the right prefix, a wrong secret": f"Bearer {prefix}_{'A' * len(secret)}",
        "another key's prefix with this secret": f"Bearer {platform.admin_key.rpartition('_')[0]}_{secret}",
        "SQL in the key": "Bearer cb_' OR '1'='1' --_x",
        "a JWT with alg none": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
        "a 64 KiB key": "Bearer " + "k" * (64 * 1024),
        "a 64 KiB prefix before a real key": "Bearer " + "k" * (64 * 1024) + real,
        "a real key with trailing junk": f"Bearer {real}junk",
        "a real key twice": f"Bearer {real} {real}",
        "a unicode look-alike in the secret": "Bearer " + real[:-1] + "\u0430",
        "a fullwidth prefix": "Bearer " + "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in real),
    }


def test_forged_and_oversized_keys_are_401_everywhere_and_never_echoed(platform: Platform) -> None:
    quality = _quality_path(platform)
    for name, authorization in _forgeries(platform).items():
        for method, path in [*PROTECTED[:3], ("GET", quality)]:
            response = platform.client.request(
                method,
                path,
                headers={"Authorization": authorization.encode("utf-8")},
                json=[] if method == "POST" else None,
            )
            oversized = len(authorization) > 32 * 1024
            _assert_refused(
                response,
                {431} if oversized else {401},
                secrets=[authorization.removeprefix("Bearer ")[-40:]],
                what=f"{name} {path}",
            )
            if not oversized:
                assert response.headers.get("www-authenticate", "").startswith("Bearer"), name


def test_many_headers_do_not_confuse_authentication(platform: Platform) -> None:
    """A thousand headers around a forged key are a 431; two Authorization headers never let the
    second one in."""
    real = platform.keys["market-publisher"]
    headers = [(f"X-Filler-{i}", "x" * 64) for i in range(1000)]
    headers.append(("Authorization", "Bearer cb_forged_AAAAAAAAAAAAAAAA"))
    response = platform.client.get("/catalog/v1/datasets", headers=headers)
    _assert_refused(response, {431}, what="1000 headers")
    both = [("Authorization", "Bearer cb_forged_AAAAAAAAAAAAAAAA"), ("Authorization", f"Bearer {real}")]
    response = platform.client.get("/catalog/v1/principals", headers=both)
    assert response.status_code in (400, 401, 403), response.text
    assert real not in response.text


# --- another tenant's objects -------------------------------------------------------------------


def test_a_department_cannot_publish_to_or_evolve_another_departments_dataset(platform: Platform) -> None:
    stranger = platform.keys["health-publisher"]
    records = platform.call(
        "POST",
        "/ingest/v1/datasets/market.inspections/records",
        stranger,
        json=[{"inspection_id": "INSP-2026-000001"}],
    )
    _assert_refused(records, {403}, secrets=[stranger], what="records")
    version = platform.call(
        "POST",
        "/catalog/v1/datasets/market.inspections/contract-versions",
        stranger,
        content=b"apiVersion: v3.0.2\nkind: DataContract\nid: market.inspections\nversion: 9.0.0\n",
        headers={"Content-Type": "application/yaml"},
    )
    assert version.status_code in (403, 422), version.text
    _assert_refused(version, {403, 422}, secrets=[stranger], what="contract version")
    renamed = platform.call(
        "PATCH", "/catalog/v1/datasets/market.inspections", stranger, json={"title": "Taken over"}
    )
    _assert_refused(renamed, {403}, secrets=[stranger], what="patch")
    assert platform.ok("GET", "/catalog/v1/datasets/market.inspections")["title"] != "Taken over"


def _foreign_and_missing(
    platform: Platform, method: str, template: str, real_id: str, key: str, **kwargs: Any
) -> tuple[httpx.Response, httpx.Response]:
    missing_id = real_id[:3] + uuid.uuid4().hex[: max(len(real_id) - 3, 8)]
    foreign = platform.call(method, template.format(real_id), key, **kwargs)
    missing = platform.call(method, template.format(missing_id), key, **kwargs)
    return foreign, missing


@pytest.mark.parametrize(
    ("method", "template", "context_key", "body"),
    [
        ("GET", "/catalog/v1/grants/{}", "grant_id", None),
        ("GET", "/catalog/v1/access-requests/{}", "request_id", None),
        ("POST", "/catalog/v1/access-requests/{}/withdraw", "request_id", {}),
        ("GET", "/feeds/v1/subscriptions/{}", "subscription_id", None),
        ("GET", "/feeds/v1/subscriptions/{}/deliveries", "subscription_id", None),
        ("POST", "/feeds/v1/subscriptions/{}/pause", "subscription_id", None),
        ("POST", "/feeds/v1/subscriptions/{}/replay", "subscription_id", {"to": "earliest"}),
        ("POST", "/feeds/v1/subscriptions/{}/ack", "subscription_id", {"cursor": "x"}),
        ("DELETE", "/feeds/v1/subscriptions/{}", "subscription_id", None),
    ],
)
def test_another_scenarios_objects_are_refused_without_telling_whose_they_are(
    platform: Platform, method: str, template: str, context_key: str, body: Any
) -> None:
    """ai-community asks for one-stop-visit's grant, request and subscription."""
    intruder = platform.keys["ai-community"]
    real_id = platform.context[context_key]
    kwargs = {} if body is None else {"json": body}
    foreign, missing = _foreign_and_missing(platform, method, template, real_id, intruder, **kwargs)
    secrets = [intruder, "one-stop-visit", "market-supervision"]
    refused = _assert_refused(foreign, {403}, secrets=secrets, what=f"foreign {template}")
    _assert_refused(missing, {404}, secrets=[intruder], what=f"missing {template}")
    assert set(refused) <= {"type", "title", "status", "detail", "instance"}, refused
    # The owner still has it, unchanged by the attempt.
    if template.startswith("/feeds"):
        owner = platform.call("GET", f"/feeds/v1/subscriptions/{real_id}", platform.keys["one-stop-visit"])
        assert owner.status_code == 200, owner.text


def test_an_expired_grant_delivers_nothing(platform: Platform) -> None:
    """A grant whose expiry has passed is refused with its reason, to its own scenario only."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    grant = feeds_grant_state(
        "ai-community",
        "market.inspections",
        valid_from=(past - timedelta(days=1)).isoformat(),
        expires_at=past.isoformat(),
    )
    platform.app.state.services["feeds"].state.runtime.bus.producer().publish([grant_record(grant)])
    projection = platform.app.state.services["feeds"].state.runtime.service_as(FeedsRuntime).catalog
    assert wait_until(lambda: projection.grant(grant["id"]) is not None, 10), "the grant did not reach feeds"
    response = platform.call(
        "POST",
        "/feeds/v1/subscriptions",
        platform.keys["ai-community"],
        json={"dataset": "market.inspections"},
    )
    body = _assert_refused(response, {403}, secrets=[platform.keys["ai-community"]], what="expired grant")
    assert body.get("reason") in ("expired", "no-grant", None), body


# --- path traversal and hostile ids -------------------------------------------------------------

HOSTILE_IDS = [
    "../principals",
    "..%2f..%2fprincipals",
    "%2e%2e%2f%2e%2e%2fprincipals",
    "%252e%252e%252fprincipals",
    "..%5c..%5cprincipals",
    "market.inspections%00.json",
    "market.inspections%2500",
    "%c0%ae%c0%ae%2fprincipals",
    "market.inspections;drop table catalog_datasets",
    "market.inspections' OR '1'='1",
    "x" * 5000,
    "%ef%bc%8e%ef%bc%8e%ef%bc%8fprincipals",
    "market%2Einspections",
]
ID_TEMPLATES = [
    ("GET", "/catalog/v1/datasets/{}", "one-stop-visit"),
    ("GET", "/catalog/v1/datasets/{}/contract", "one-stop-visit"),
    ("GET", "/catalog/v1/grants/{}", "one-stop-visit"),
    ("GET", "/catalog/v1/principals/{}/keys", "market-publisher"),
    ("POST", "/ingest/v1/datasets/{}/records", "market-publisher"),
    ("GET", "/feeds/v1/subscriptions/{}/deliveries", "one-stop-visit"),
    ("GET", "/quality/v1/datasets/{}/quality", "city-ops"),
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_traversal_and_injection_in_ids_never_reach_another_resource(
    platform: Platform, hostile: str
) -> None:
    listed: Any = platform.ok("GET", "/catalog/v1/principals")
    principals = {p["id"] for p in (listed["items"] if isinstance(listed, dict) else listed)}
    for method, template, who in ID_TEMPLATES:
        key = platform.keys[who]
        path = template.replace("{}", hostile)
        kwargs: dict[str, Any] = {"json": [{"inspection_id": "x"}]} if method == "POST" else {}
        response = platform.call(method, path, key, **kwargs)
        what = f"{method} {path[:120]} as {who}"
        assert response.status_code < 500, f"{what}: {response.text[:300]}"
        if response.status_code < 300:
            # %2E is a dot: the same resource. A decoded ..%2f must not have reached another
            # resource (the principals).
            assert not principals & set(re.findall(r'"id":"([^"]+)"', response.text)) - {who}, what
            continue
        _assert_refused(response, range(400, 500), secrets=[key], what=what)


# --- the audit trail ----------------------------------------------------------------------------


def test_refused_attempts_are_on_the_audit_trail(platform: Platform) -> None:
    intruder = platform.keys["ai-community"]
    request_id = platform.context["request_id"]
    marker = f"audit-{uuid.uuid4().hex[:8]}"
    attempts = [
        ("POST", f"/catalog/v1/access-requests/{request_id}/approve", {"reason": marker}),
        ("POST", f"/catalog/v1/access-requests/{request_id}/withdraw", {}),
        ("POST", f"/catalog/v1/grants/{platform.context['grant_id']}/revoke", {"reason": marker}),
        ("PATCH", "/catalog/v1/datasets/market.inspections", {"title": marker}),
        ("GET", f"/catalog/v1/grants/{platform.context['grant_id']}", None),
    ]
    for method, path, body in attempts:
        response = platform.call(method, path, intruder, **({} if body is None else {"json": body}))
        _assert_refused(response, {403, 404}, secrets=[intruder], what=path)
    page = platform.ok("GET", "/catalog/v1/audit?outcome=denied&actor=ai-community&limit=500")
    audited = {(entry["action"], entry["resource_id"]) for entry in page["items"]}
    assert any(request_id in resource and "approve" in action for action, resource in audited), audited
    assert any(request_id in resource and "withdraw" in action for action, resource in audited), audited
    assert any(
        platform.context["grant_id"] in resource and "revoke" in action for action, resource in audited
    )
    assert ("grant.read", platform.context["grant_id"]) in audited, audited
    assert any("market.inspections" in resource for _, resource in audited), audited
    for entry in page["items"]:
        assert entry["actor_kind"] == "scenario" and entry["outcome"] == "denied"
        assert intruder not in str(entry)
    # Another scenario's part of the trail stays out of the intruder's sight.
    theirs = platform.ok("GET", "/catalog/v1/audit?scenario=one-stop-visit", intruder)
    assert theirs["items"] == []
    assert platform.ok("GET", "/catalog/v1/audit?scenario=one-stop-visit")["items"], (
        "the filter finds nothing"
    )
