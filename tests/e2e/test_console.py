"""The console's pages over plain HTTP: login and logout, what each role is offered and refused,
and an approval through the form, against ``citybase up``'s app (console mounted at /console)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from citybase.demo import FaultRates
from tests.factories import evolve_contract, renamed_contract
from tests.support.console import issued_key
from tests.support.http import wait_until
from tests.support.platform import SHORT_QUALITY_WINDOWS, Platform, in_process
from tests.support.principals import APPROVER, OPERATOR, OTHER_SCENARIO, PUBLISHER, SCENARIO, populate

INTRANET = "192.0.2.0/24"
"""The city intranet webhooks may reach in these tests: a documentation network (RFC 5737), so a
receiver's address needs no name lookup and no push ever leaves the machine."""
INTRANET_WEBHOOKS = {"CITYBASE_FEEDS_WEBHOOK_ALLOW_NETWORKS": f'["{INTRANET}"]'}
RECEIVER = "https://192.0.2.10/street"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("console"),
        key_name="console",
        environment={**SHORT_QUALITY_WINDOWS, **INTRANET_WEBHOOKS},
        prepare_platform=populate,
    ) as running:
        yield running


def login(platform: Platform, who: str | None) -> TestClient:
    """Log in to the console as ``who`` (a principal id; None: the admin) on a fresh cookie jar."""
    client = platform.client
    assert isinstance(client, TestClient)
    client.cookies.clear()
    key = platform.admin_key if who is None else platform.keys[who]
    response = client.post("/console/login", data={"key": key, "next": "/console/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def test_a_wrong_key_gets_the_login_form_again_with_a_reason(platform: Platform) -> None:
    client = platform.client
    client.cookies.clear()
    response = client.post("/console/login", data={"key": "cbk_00000000_not-a-key"}, follow_redirects=False)
    assert response.status_code == 401
    assert "This API key is not valid" in response.text
    assert "set-cookie" not in response.headers
    assert "default-src 'none'" in response.headers["content-security-policy"]
    # what the person typed comes back escaped, never as markup
    echoed = client.get('/console/login?next="><script>alert(1)</script>')
    assert "<script>alert(1)" not in echoed.text
    assert "&#34;&gt;&lt;script&gt;" in echoed.text
    empty = client.post("/console/login", data={"key": ""}, follow_redirects=False)
    assert empty.status_code == 401
    assert "Enter an API key" in empty.text


def test_pages_ask_for_a_login_first_and_come_back_after_it(platform: Platform) -> None:
    client = platform.client
    client.cookies.clear()
    response = client.get("/console/datasets?q=bus", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2Fdatasets%3Fq%3Dbus"
    back = client.post(
        "/console/login",
        data={"key": platform.keys[OPERATOR], "next": "/console/datasets?q=bus"},
        follow_redirects=False,
    )
    assert back.status_code == 303
    assert back.headers["location"] == "/console/datasets?q=bus"
    cookie = back.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/console/" in cookie
    # never an open redirect
    away = client.post(
        "/console/login",
        data={"key": platform.keys[OPERATOR], "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert away.headers["location"] == "/console/"


def test_logout_ends_the_session(platform: Platform) -> None:
    client = login(platform, OPERATOR)
    assert client.get("/console/").status_code == 200
    response = client.post("/console/logout", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert (
        'citybase_console=""' in response.headers["set-cookie"]
        or "Max-Age=0" in response.headers["set-cookie"]
    )
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_the_index_links_to_the_console(platform: Platform) -> None:
    assert platform.client.get("/").json()["console"].endswith("/console/")


def test_a_scenario_is_refused_the_queue_others_grants_and_the_overview(platform: Platform) -> None:
    platform.request_access(OTHER_SCENARIO)
    client = login(platform, SCENARIO)
    home = client.get("/console/")
    assert home.status_code == 200
    assert "Access requests" not in home.text
    assert f'/console/scenarios/{SCENARIO}"' in home.text
    for page in ("/console/access-requests", f"/console/scenarios/{OTHER_SCENARIO}", "/console/overview"):
        response = client.get(page)
        assert response.status_code == 403, page
        assert "Not for your role" in response.text
    own = client.get(f"/console/scenarios/{SCENARIO}")
    assert own.status_code == 200
    assert OTHER_SCENARIO not in own.text
    listed = client.get("/console/scenarios")
    assert OTHER_SCENARIO not in listed.text


def test_an_unknown_dataset_is_a_404_page_not_an_error(platform: Platform) -> None:
    client = login(platform, SCENARIO)
    response = client.get("/console/datasets/transport.no-such-thing")
    assert response.status_code == 404
    assert "Not found" in response.text


def test_an_approver_narrows_fields_and_masks_one_and_the_grant_says_so(platform: Platform) -> None:
    request = platform.request_access(SCENARIO)
    client = login(platform, APPROVER)
    queue = client.get("/console/access-requests")
    assert queue.status_code == 200
    assert request["id"] in queue.text
    page = client.get(f"/console/access-requests/{request['id']}")
    assert 'id="approve-form"' in page.text
    assert "sensitive: partial" in page.text  # inspector_phone, from the contract
    kept = ["inspection_id", "district", "result", "inspector_phone"]  # inspected_at left out
    answer = client.post(
        f"/console/access-requests/{request['id']}/approve",
        data={
            "field": kept,
            "mask.district": "hash",
            "mask.inspector_phone": "redact",
            "reason": "street view",
            "duration_days": "30",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    grant_id = answer.headers["location"].rsplit("/", 1)[-1]
    grant = platform.ok("GET", f"/catalog/v1/grants/{grant_id}")
    assert grant["fields"] == kept
    assert grant["masking"]["district"]["kind"] == "hash"
    assert grant["masking"]["inspector_phone"]["kind"] == "redact"
    shown = client.get(answer.headers["location"])
    assert "masked: hash" in shown.text
    assert "inspected_at" not in shown.text
    # The scenario sees its grant on its own page; another scenario never does.
    assert grant_id in login(platform, SCENARIO).get(f"/console/scenarios/{SCENARIO}").text
    other = login(platform, OTHER_SCENARIO)
    refused = other.get(f"/console/grants/{grant_id}")
    assert refused.status_code == 403
    assert "Not for your role" in refused.text
    assert grant_id not in other.get(f"/console/scenarios/{OTHER_SCENARIO}").text


def test_terms_the_catalog_refuses_come_back_on_the_form_with_the_reason(platform: Platform) -> None:
    request = platform.request_access(SCENARIO)
    client = login(platform, APPROVER)
    answer = client.post(
        f"/console/access-requests/{request['id']}/approve",
        data={"field": ["district"], "row_filter": "district in [", "reason": "ok"},
        follow_redirects=False,
    )
    assert answer.status_code == 422
    assert 'id="decision-error"' in answer.text
    assert 'id="approve-form"' in answer.text  # still pending: the form is offered again
    rejected = client.post(
        f"/console/access-requests/{request['id']}/reject",
        data={"reason": "not needed"},
        follow_redirects=False,
    )
    assert rejected.status_code == 303
    assert platform.ok("GET", f"/catalog/v1/access-requests/{request['id']}")["status"] == "rejected"


def test_the_dataset_page_shows_contract_diff_sensitivity_and_quality(platform: Platform) -> None:
    platform.demo_traffic("market.inspections", 100, faults=FaultRates(null=0.2))
    assert wait_until(
        lambda: platform.call("GET", "/quality/v1/datasets/market.inspections/quality").json().get("window"),
        20,
    ), "no quality window closed"
    client = login(platform, OPERATOR)
    page = client.get("/console/datasets/market.inspections?old=1.0.0&new=1.1.0")
    assert page.status_code == 200
    assert "What changed from 1.0.0 to 1.1.0" in page.text
    assert re.search(r"business_category</code></td><td><span class=\"tag added\">added", page.text)
    assert "sensitive: partial" in page.text
    points = int(re.search(r'data-points="(\d+)"', page.text).group(1))
    assert points >= 1
    assert "Rejected by rule" in page.text
    search = client.get("/console/datasets?q=inspection")
    assert "market.inspections" in search.text
    assert "transport.bus-arrivals" not in search.text


def test_the_failing_values_of_a_conditional_dataset_are_for_its_owner_and_operators(
    platform: Platform,
) -> None:
    """market.inspections is conditional: a scenario, even one with a grant, sees its scores and
    counts on the page but not the failing values; the operator sees them."""
    platform.demo_traffic("market.inspections", 100, faults=FaultRates(null=0.2))
    assert wait_until(
        lambda: platform.call("GET", "/quality/v1/datasets/market.inspections/quality").json().get("window"),
        20,
    ), "no quality window closed"
    scenario_page = login(platform, SCENARIO).get("/console/datasets/market.inspections")
    assert scenario_page.status_code == 200
    assert 'id="evidence-withheld"' in scenario_page.text
    assert "shown to its owning department and to operators only" in scenario_page.text
    operator_page = login(platform, OPERATOR).get("/console/datasets/market.inspections")
    assert operator_page.status_code == 200
    assert 'id="evidence-withheld"' not in operator_page.text
    assert 'id="rules"' in operator_page.text


def test_the_operator_overview_and_the_audit_search(platform: Platform) -> None:
    platform.demo_traffic("spatial.building-permits", 100, faults=FaultRates(null=0.3), seed=5)
    client = login(platform, OPERATOR)

    def ingest_row() -> list[str]:
        page = client.get("/console/overview")
        assert page.status_code == 200
        row = re.search(r"spatial\.building-permits</a></td>((?:\s*<td>.*?</td>){3})", page.text)
        return re.findall(r"<td>(?:<span[^>]*>)?([^<]*)", row.group(1)) if row else []

    # rate over the last five minutes, accepted, dead-lettered: once quality has closed a window
    assert wait_until(lambda: ingest_row()[:1] not in ([], ["—"], ["0.0"]), 20), ingest_row()
    rate, accepted, dead_lettered = ingest_row()
    assert float(rate) > 0
    assert int(accepted) > 0
    assert int(dead_lettered) > 0
    overview = client.get("/console/overview")
    for section in ('id="ingest"', 'id="breaches"', 'id="worst"', 'id="idle"'):
        assert section in overview.text

    # Records a day late breach the latency SLA of their contract: the overview lists the breach.
    platform.demo_traffic("health.outpatient-visits", 100, faults=FaultRates(late=0.5), seed=6)

    def breaches() -> str:
        page = client.get("/console/overview").text
        return re.search(r'id="breaches">(.*?)</table>', page, re.S).group(1)

    assert wait_until(lambda: "health.outpatient-visits" in breaches(), 20), breaches()
    assert '<span class="tag fail">latency</span>' in breaches()
    audit = client.get("/console/audit?action=api_key.issue")
    assert audit.status_code == 200
    actions = re.findall(r"<code class=\"muted nowrap\">([a-z_.]+)</code>", audit.text)
    assert len(actions) >= 5  # the admin's key at first start, then one per principal of the stories
    assert set(actions) == {"api_key.issue"}
    bad = client.get("/console/audit?from=yesterday")
    assert bad.status_code == 422


def test_a_scenario_sees_its_subscription_and_usage_and_the_dataset_its_subscriber(
    platform: Platform,
) -> None:
    request = platform.request_access(SCENARIO, fields=["inspection_id", "district", "result"])
    platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{request['id']}/approve",
        platform.keys[APPROVER],
        json={"reason": "district view"},
    )

    def subscribe() -> bool:
        response = platform.call(
            "POST", "/feeds/v1/subscriptions", platform.keys[SCENARIO], json={"dataset": "market.inspections"}
        )
        return response.status_code == 201

    assert wait_until(subscribe, 15), "the grant did not reach feeds"
    subscription = platform.ok("GET", "/feeds/v1/subscriptions", platform.keys[SCENARIO])["items"][0]
    platform.demo_traffic("market.inspections", 20, seed=3)

    def delivered() -> bool:
        batch = platform.ok(
            "GET",
            f"/feeds/v1/subscriptions/{subscription['id']}/records",
            platform.keys[SCENARIO],
            params={"wait": 1},
        )
        return bool(batch.get("records") or batch.get("items"))

    assert wait_until(delivered, 20), "no record was delivered"
    client = login(platform, SCENARIO)
    mine = client.get(f"/console/scenarios/{SCENARIO}")
    assert subscription["id"] in re.search(r'id="subscriptions">(.*?)</table>', mine.text, re.S).group(1)

    def metered() -> bool:
        page = login(platform, OPERATOR).get("/console/datasets/market.inspections")
        return subscription["id"] in re.search(r'id="subscribers">(.*?)</table>', page.text, re.S).group(1)

    assert wait_until(metered, 20), "the delivery was not metered by quality"
    usage = login(platform, OPERATOR).get(f"/console/scenarios/{SCENARIO}")
    assert usage.status_code == 200
    assert 'id="usage-datasets"' in usage.text


def test_the_whole_story_from_the_console_forms_alone(platform: Platform) -> None:
    """An admin creates a scenario and its key, the scenario asks for access from the dataset page,
    an approver narrows and approves, the scenario subscribes, an admin revokes the grant, and the
    scenario's subscription page says delivery stopped: every step a form of the console."""
    admin = login(platform, None)
    made = admin.post(
        "/console/scenarios",
        data={
            "id": "street-inspections",
            "name": "Street inspections",
            "organisation": "Putuo district office",
            "contact": "street@putuo.example.cn",
            "description": "",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"] == "/console/scenarios/street-inspections"
    page = admin.get(made.headers["location"])
    assert 'id="key-form"' in page.text
    assert 'id="status-form"' in page.text
    shown = admin.post("/console/scenarios/street-inspections/keys", data={"name": "laptop"})
    assert shown.status_code == 201
    assert "it will not be shown again" in shown.text
    key = issued_key(shown.text)
    assert shown.headers["cache-control"] == "no-store"
    assert key not in admin.get("/console/scenarios/street-inspections").text  # never again
    platform.wait_for_key(key)
    platform.keys["street-inspections"] = key

    scenario = login(platform, "street-inspections")
    dataset = scenario.get("/console/datasets/market.inspections")
    assert 'id="request-form"' in dataset.text
    # a field the contract does not have: refused, the reason next to the form, the inputs kept
    refused = scenario.post(
        "/console/datasets/market.inspections/access-requests",
        data={
            "fields": ["district", "shoe_size"],
            "purpose": "Results per street for residents",
            "purpose_category": "public_service",
            "duration_days": "60",
        },
        follow_redirects=False,
    )
    assert refused.status_code == 422
    assert 'id="request-error"' in refused.text
    assert "/body/fields/1" in refused.text
    assert "Results per street for residents</textarea>" in refused.text
    assert 'value="district" id="request-field-district" checked' in refused.text
    filed = scenario.post(
        "/console/datasets/market.inspections/access-requests",
        data={
            "fields": ["inspection_id", "district", "result", "inspector_phone"],
            "purpose": "Results per street for residents",
            "purpose_category": "public_service",
            "duration_days": "60",
            "quota_records_per_day": "5000",
        },
        follow_redirects=False,
    )
    assert filed.status_code == 303, filed.text
    request_id = filed.headers["location"].rsplit("/", 1)[-1]
    request = platform.ok("GET", f"/catalog/v1/access-requests/{request_id}")
    assert request["fields"] == ["inspection_id", "district", "result", "inspector_phone"]
    assert (request["duration_days"], request["quota_records_per_day"]) == (60, 5000)
    assert 'id="withdraw-form"' in scenario.get(filed.headers["location"]).text

    approver = login(platform, APPROVER)
    approved = approver.post(
        f"/console/access-requests/{request_id}/approve",
        data={"field": ["inspection_id", "district", "result", "inspector_phone"], "reason": "street view"},
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    grant_path = approved.headers["location"]
    grant_id = grant_path.rsplit("/", 1)[-1]
    grant_page = approver.get(grant_path)
    assert 'id="narrow-form"' in grant_page.text
    expires_on = re.search(r'name="expires_on" id="narrow-expires" value="([0-9-]+)"', grant_page.text).group(
        1
    )
    earlier = (date.fromisoformat(expires_on) - timedelta(days=10)).isoformat()
    narrowed = approver.post(
        f"{grant_path}/narrow",
        data={
            "field": ["inspection_id", "district", "result"],
            "mask.district": "hash",
            "expires_on": earlier,
            "reason": "the phone is not needed",
        },
        follow_redirects=False,
    )
    assert narrowed.status_code == 303, narrowed.text
    grant = platform.ok("GET", f"/catalog/v1/grants/{grant_id}")
    assert grant["fields"] == ["inspection_id", "district", "result"]
    assert grant["masking"]["district"]["kind"] == "hash"
    assert grant["expires_at"].startswith(earlier)
    assert grant["version"] == 2
    widened = approver.post(
        f"{grant_path}/narrow",
        data={"field": ["inspection_id", "inspected_at"], "reason": "wider"},  # never requested
        follow_redirects=False,
    )
    assert widened.status_code == 422
    assert 'id="narrow-error"' in widened.text

    scenario = login(platform, "street-inspections")
    assert 'id="subscribe-market.inspections"' in scenario.get("/console/scenarios/street-inspections").text

    def subscribed() -> str | None:
        answer = scenario.post(
            "/console/subscriptions", data={"dataset": "market.inspections"}, follow_redirects=False
        )
        return answer.headers["location"] if answer.status_code == 303 else None

    assert wait_until(lambda: subscribed() is not None, 15), "the grant did not reach feeds"
    subscription_path = platform.ok("GET", "/feeds/v1/subscriptions", key)["items"][0]["id"]
    subscription_path = f"/console/subscriptions/{subscription_path}"
    page = scenario.get(subscription_path)
    assert "Delivers records now." in page.text
    paused = scenario.post(f"{subscription_path}/pause", follow_redirects=False)
    assert paused.status_code == 303
    assert paused.headers["location"] == subscription_path
    assert "Delivers nothing now: paused." in scenario.get(subscription_path).text
    assert scenario.post(f"{subscription_path}/resume", follow_redirects=False).status_code == 303
    moved = scenario.post(f"{subscription_path}/position", data={"to": "earliest"}, follow_redirects=False)
    assert moved.status_code == 303
    subscription_id = subscription_path.rsplit("/", 1)[-1]
    assert platform.ok("GET", f"/feeds/v1/subscriptions/{subscription_id}", key)["replays"] == 1

    admin = login(platform, None)
    revoked = admin.post(f"{grant_path}/revoke", data={"reason": "the pilot ended"}, follow_redirects=False)
    assert revoked.status_code == 303
    assert platform.ok("GET", f"/catalog/v1/grants/{grant_id}")["status"] == "revoked"

    scenario = login(platform, "street-inspections")
    assert wait_until(lambda: "Delivers nothing now: revoked." in scenario.get(subscription_path).text, 15)
    deleted = scenario.post(f"{subscription_path}/delete", follow_redirects=False)
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/console/scenarios/street-inspections"


def test_an_admin_creates_a_domain_a_department_and_principals_and_manages_keys(
    platform: Platform,
) -> None:
    admin = login(platform, None)
    page = admin.get("/console/admin")
    assert page.status_code == 200
    for kind in ("department", "scenario", "approver", "operator", "admin"):
        assert f'id="principal-kind-{kind}"' in page.text
    assert "changes nothing" in page.text  # what an operator may do, next to its choice
    domain = admin.post(
        "/console/admin/domain", data={"id": "water", "name": "Water"}, follow_redirects=False
    )
    assert domain.status_code == 303, domain.text
    department = admin.post(
        "/console/admin/department",
        data={"id": "water-authority", "name": "Water Authority", "kind": "bureau", "domains": "water"},
        follow_redirects=False,
    )
    assert department.status_code == 303, department.text
    assert platform.ok("GET", "/catalog/v1/departments/water-authority")["domains"] == ["water"]
    again = admin.post(
        "/console/admin/department",
        data={"id": "water-authority", "name": "Again", "kind": "bureau"},
        follow_redirects=False,
    )
    assert again.status_code == 409
    assert 'id="department-error"' in again.text
    assert 'value="Again"' in again.text
    bad = admin.post(
        "/console/admin/principal",
        data={"id": "Not A Slug", "kind": "approver", "name": ""},
        follow_redirects=False,
    )
    assert bad.status_code == 422
    assert "/body/id" in bad.text
    assert re.search(r'<span class="field-error" data-field="id">', bad.text)
    made = admin.post(
        "/console/admin/principal",
        data={
            "id": "water-publisher",
            "kind": "department",
            "name": "Water publisher",
            "department_id": "water-authority",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    assert made.headers["location"] == "/console/principals/water-publisher"
    shown = admin.post("/console/principals/water-publisher/keys", data={"name": "first"})
    assert shown.status_code == 201
    key = issued_key(shown.text)
    platform.wait_for_key(key)
    platform.keys["water-publisher"] = key

    # the department manages its own keys on "My department"
    publisher = login(platform, "water-publisher")
    assert "/console/department" in publisher.get("/console/").text
    mine = publisher.get("/console/department")
    assert mine.status_code == 200
    assert "Water Authority" in mine.text
    child = issued_key(publisher.post("/console/principals/water-publisher/keys", data={"name": "ci"}).text)
    prefix = next(
        k["prefix"]
        for k in platform.ok("GET", "/catalog/v1/principals/water-publisher/keys")
        if k["name"] == "ci"
    )
    assert f"<code>{prefix}</code>" in publisher.get("/console/department").text
    revoked = publisher.post(
        f"/console/principals/water-publisher/keys/{prefix}/revoke", follow_redirects=False
    )
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/console/department"
    assert wait_until(lambda: platform.call("GET", "/catalog/v1/me", child).status_code == 401, 10)
    # another principal's keys are not the department's
    assert publisher.get(f"/console/principals/{APPROVER}").status_code == 403
    # the admin sees both keys, one revoked, and revokes the first: the department's session ends
    listed = login(platform, None).get("/console/principals/water-publisher")
    assert listed.text.count("tag revoked") == 1
    first = next(
        k["prefix"]
        for k in platform.ok("GET", "/catalog/v1/principals/water-publisher/keys")
        if k["name"] == "first"
    )
    assert (
        login(platform, None).post(f"/console/principals/water-publisher/keys/{first}/revoke").status_code
        == 200
    )
    assert wait_until(lambda: platform.call("GET", "/catalog/v1/me", key).status_code == 401, 10)


def test_forms_are_offered_only_to_the_roles_that_may_use_them(platform: Platform) -> None:
    operator = login(platform, OPERATOR)
    assert operator.get("/console/admin").status_code == 403
    assert 'id="request-form"' not in operator.get("/console/datasets/market.inspections").text
    assert 'id="scenario-form"' not in operator.get("/console/scenarios").text
    refused = operator.post("/console/admin/domain", data={"id": "x", "name": "X"})
    assert refused.status_code == 403
    scenario = login(platform, SCENARIO)
    assert scenario.get("/console/admin").status_code == 403
    assert scenario.get("/console/department").status_code == 403
    assert 'id="key-form"' not in scenario.get(f"/console/scenarios/{SCENARIO}").text


def test_a_form_sent_from_another_site_is_refused(platform: Platform) -> None:
    client = login(platform, None)
    forged = client.post(
        "/console/admin/domain",
        data={"id": "forged", "name": "Forged"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "not sent from a page of this console" in forged.text
    assert all(d["id"] != "forged" for d in platform.ok("GET", "/catalog/v1/domains"))
    own = client.post(
        "/console/admin/domain",
        data={"id": "own-origin", "name": "Own"},
        headers={"Origin": str(client.base_url).rstrip("/")},
        follow_redirects=False,
    )
    assert own.status_code == 303


def test_a_department_registers_a_dataset_and_confirms_its_next_version_after_the_diff(
    platform: Platform,
) -> None:
    publisher = login(platform, PUBLISHER)
    assert 'id="register-link"' in publisher.get("/console/").text
    form = publisher.get("/console/contracts/new")
    assert form.status_code == 200
    assert 'id="register-form"' in form.text and 'enctype="multipart/form-data"' in form.text

    first = renamed_contract("market.inspections", "market.price-checks", "market-supervision")
    broken = first.replace("logicalType: string", "logicalType: colour", 1)
    refused = publisher.post("/console/contracts", data={"document": broken}, follow_redirects=False)
    assert refused.status_code in (400, 422), refused.text
    assert 'id="register-error"' in refused.text
    errors = re.search(r'<ul id="register-errors">(.*?)</ul>', refused.text, re.S).group(1)
    wrong_line = next(n for n, line in enumerate(broken.splitlines(), 1) if "logicalType: colour" in line)
    assert f"line {wrong_line}, <code>/schema/0/properties/0/logicalType</code>" in errors
    assert "logicalType: colour" in refused.text  # what was pasted, kept
    assert platform.call("GET", "/catalog/v1/datasets/market.price-checks").status_code == 404

    # a new dataset, uploaded as a file: registered at once
    uploaded = publisher.post(
        "/console/contracts",
        files={"upload": ("price-checks.yaml", first.encode(), "application/yaml")},
        data={"document": ""},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303, uploaded.text
    assert uploaded.headers["location"] == "/console/datasets/market.price-checks"
    assert platform.ok("GET", "/catalog/v1/datasets/market.price-checks")["current_version"] == "1.0.0"

    # its next version: shown with what it changes, registered only once confirmed
    def add_inspector_note(document: dict[str, Any]) -> None:
        document["schema"][0]["properties"].append(
            {"name": "inspector_note", "logicalType": "string", "description": "Free text, optional."}
        )

    second = evolve_contract(first, "1.1.0", add_inspector_note)
    preview = publisher.post("/console/contracts", data={"document": second}, follow_redirects=False)
    assert preview.status_code == 200, preview.text
    assert 'id="register-preview"' in preview.text
    assert "compatible (BACKWARD)" in preview.text
    assert "+      - name: inspector_note" in preview.text or "name: inspector_note</span>" in preview.text
    assert '<span class="tag removed">-version: 1.0.0</span>' in preview.text
    assert platform.ok("GET", "/catalog/v1/datasets/market.price-checks")["current_version"] == "1.0.0"
    confirmed = publisher.post(
        "/console/contracts", data={"document": second, "confirmed": "1"}, follow_redirects=False
    )
    assert confirmed.status_code == 303, confirmed.text
    assert platform.ok("GET", "/catalog/v1/datasets/market.price-checks")["current_version"] == "1.1.0"

    # a version that breaks compatibility: the verdict and each breaking change, no confirm button
    breaking = evolve_contract(second, "1.2.0", lambda d: d["schema"][0]["properties"].pop(0))
    verdict = publisher.post("/console/contracts", data={"document": breaking}, follow_redirects=False)
    assert verdict.status_code == 200, verdict.text
    assert "breaks BACKWARD compatibility" in verdict.text
    assert 'id="register-breaking"' in verdict.text and 'id="confirm-form"' not in verdict.text

    # a scenario registers nothing, and is not offered the form
    scenario = login(platform, SCENARIO)
    assert scenario.get("/console/contracts/new").status_code == 403
    assert 'id="register-link"' not in scenario.get("/console/").text


def test_a_scenario_pushes_a_granted_dataset_to_a_webhook_and_deletes_it(platform: Platform) -> None:
    request = platform.request_access(SCENARIO)
    platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{request['id']}/approve",
        platform.keys[APPROVER],
        json={"reason": "webhook pilot"},
    )
    scenario = login(platform, SCENARIO)
    page = scenario.get(f"/console/scenarios/{SCENARIO}")
    assert 'id="webhook-form"' in page.text
    # feeds never pushes to a loopback address: refused next to the form, what was typed kept
    loopback = scenario.post(
        "/console/webhooks",
        data={"dataset": "market.inspections", "url": "https://127.0.0.1/hook", "start": "earliest"},
        follow_redirects=False,
    )
    assert loopback.status_code in (400, 422), loopback.text
    assert 'id="webhook-error"' in loopback.text
    assert 'value="https://127.0.0.1/hook"' in loopback.text

    def created() -> Any:
        answer = scenario.post(
            "/console/webhooks",
            data={
                "dataset": "market.inspections",
                "url": RECEIVER,
                "start": "latest",
            },
            follow_redirects=False,
        )
        return answer if answer.status_code == 201 else None

    assert wait_until(lambda: created() is not None, 15), "the grant did not reach feeds"
    webhooks = [
        s
        for s in platform.ok("GET", "/feeds/v1/subscriptions", platform.keys[SCENARIO])["items"]
        if s["mode"] == "webhook" and s["webhook_url"] == RECEIVER
    ]
    shown = created()  # a second webhook to the same receiver: its secret is on the page once
    assert shown is not None
    assert "it will not be shown again" in shown.text
    secret = re.search(r'<code id="webhook-secret">([^<]+)</code>', shown.text).group(1)
    assert shown.headers["cache-control"] == "no-store"
    listed = scenario.get(f"/console/scenarios/{SCENARIO}").text
    assert RECEIVER in listed
    assert secret not in listed
    subscription_path = re.search(
        r'href="(/console/subscriptions/[^"]+)" id="webhook-subscription"', shown.text
    )
    assert subscription_path is not None
    page = scenario.get(subscription_path.group(1))
    assert 'id="webhook-deliveries"' in page.text
    for subscription in [*webhooks, {"id": subscription_path.group(1).rsplit("/", 1)[-1]}]:
        deleted = scenario.post(f"/console/subscriptions/{subscription['id']}/delete", follow_redirects=False)
        assert deleted.status_code == 303, deleted.text
    remaining = platform.ok("GET", "/feeds/v1/subscriptions", platform.keys[SCENARIO])["items"]
    assert not [s for s in remaining if s.get("webhook_url") == RECEIVER]


def test_an_approver_narrows_a_grant_with_a_row_filter_and_unmasks_a_field_with_a_reason(
    platform: Platform,
) -> None:
    request = platform.request_access(SCENARIO)
    approver = login(platform, APPROVER)
    approved = approver.post(
        f"/console/access-requests/{request['id']}/approve",
        data={"field": request["fields"], "reason": "ok"},
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    grant_path = approved.headers["location"]
    grant_id = grant_path.rsplit("/", 1)[-1]
    before = platform.ok("GET", f"/catalog/v1/grants/{grant_id}")
    page = approver.get(grant_path)
    assert 'id="narrow-row-filter"' in page.text
    assert 'id="narrow-unmask-inspector_phone"' in page.text  # sensitive, masked by the contract
    assert 'id="narrow-unmask-district"' not in page.text  # not sensitive: nothing to unmask
    bad_filter = approver.post(
        f"{grant_path}/narrow",
        data={"field": before["fields"], "row_filter": "district in [", "reason": "fewer rows"},
        follow_redirects=False,
    )
    assert bad_filter.status_code == 422
    assert 'id="narrow-error"' in bad_filter.text
    assert 'class="field-error" data-field="row_filter"' in bad_filter.text
    assert 'value="district in ["' in bad_filter.text
    narrowed = approver.post(
        f"{grant_path}/narrow",
        data={
            "field": before["fields"],
            "row_filter": 'district in ["Putuo", "Baoshan"]',
            "unmask.inspector_phone": "Case handlers call the inspector back",
            "reason": "two districts; phone for case handlers",
        },
        follow_redirects=False,
    )
    assert narrowed.status_code == 303, narrowed.text
    grant = platform.ok("GET", f"/catalog/v1/grants/{grant_id}")
    assert grant["row_filter"] == 'district in ["Putuo", "Baoshan"]'
    assert grant["unmasked"]["inspector_phone"]["reason"] == "Case handlers call the inspector back"
    assert "inspector_phone" not in grant["masking"]
    shown = approver.get(grant_path).text
    assert "in clear: Case handlers call the inspector back" in shown
    assert 'value="district in [&#34;Putuo&#34;, &#34;Baoshan&#34;]"' in shown
