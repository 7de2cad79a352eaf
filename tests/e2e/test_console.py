"""The console's pages over plain HTTP: login and logout, what each role is offered and refused,
and an approval through the form, against ``citybase up``'s app (console mounted at /console)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from citybase.demo import FaultRates
from tests.support.http import wait_until
from tests.support.platform import SHORT_QUALITY_WINDOWS, Platform, in_process
from tests.support.principals import APPROVER, OPERATOR, OTHER_SCENARIO, SCENARIO, populate


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("console"),
        key_name="console",
        environment=SHORT_QUALITY_WINDOWS,
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
