"""Each console form against a stand-in platform (httpx.MockTransport): the request it sends to
which service, where the person goes after it (303), and how a refusal is shown next to the form."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console import forms
from services.console.app import create_app
from services.console.deps import COOKIE

KEY = "cbk_00000000_key"
CALLERS = {
    "admin": {"id": "root", "kind": "admin", "name": "Root", "department_id": None},
    "scenario": {"id": "one-stop-visit", "kind": "scenario", "name": "One stop", "department_id": None},
    "approver": {"id": "market-approver", "kind": "approver", "name": "Approver", "department_id": "market"},
    "department": {
        "id": "market-publisher",
        "kind": "department",
        "name": "Publisher",
        "department_id": "market",
    },
    "operator": {"id": "city-ops", "kind": "operator", "name": "Ops", "department_id": None},
}
GRANT = {
    "id": "g-1",
    "version": 1,
    "scenario_id": "one-stop-visit",
    "dataset_id": "market.inspections",
    "request_id": "ar-1",
    "contract_version": "1.0.0",
    "status": "active",
    "fields": ["inspection_id", "district", "inspector_phone"],
    "masking": {},
    "unmasked": {},
    "row_filter": None,
    "valid_from": "2026-12-01T08:00:00+00:00",
    "expires_at": "2027-03-01T08:00:00+00:00",
    "quota": None,
    "purpose": "street view",
    "purpose_category": "public_service",
    "status_reason": None,
    "created_at": "2026-12-01T08:00:00+00:00",
    "updated_at": "2026-12-01T08:00:00+00:00",
}
ISSUED = {
    "prefix": "cbk_12345678",
    "principal_id": "water-publisher",
    "name": "ci",
    "issued_by": None,
    "created_at": "2026-12-07T08:00:00+00:00",
    "revoked_at": None,
    "key": "cbk_12345678_the-secret-part",
}


class StandIn:
    """The four services as the console calls them: canned answers by method and path, every
    call kept, and 404 for anything not listed."""

    def __init__(self, caller: str, answers: dict[tuple[str, str], httpx.Response] | None = None) -> None:
        self.me = CALLERS[caller]
        self.answers = {
            ("GET", "/catalog/v1/domains"): httpx.Response(200, json=[]),
            ("GET", "/catalog/v1/departments"): httpx.Response(200, json=[]),
            ("GET", "/catalog/v1/principals"): httpx.Response(200, json=[]),
            ("GET", "/catalog/v1/scenarios"): httpx.Response(200, json=[]),
            ("GET", "/catalog/v1/grants/g-1"): httpx.Response(200, json=GRANT),
            **(answers or {}),
        }
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        if request.url.path == "/catalog/v1/me":
            return httpx.Response(200, json=self.me)
        self.calls.append(request)
        answer = self.answers.get((request.method, request.url.path))
        return answer or httpx.Response(404, json={"title": "Not found", "detail": request.url.path})

    def sent(self, method: str, path: str) -> Any:
        """The body of the last call of ``method`` to ``path`` (None for no body)."""
        found = [c for c in self.calls if (c.method, c.url.path) == (method, path)]
        assert found, f"no {method} {path} among {[(c.method, c.url.path) for c in self.calls]}"
        return json.loads(found[-1].content) if found[-1].content else None

    def changes(self) -> list[tuple[str, str]]:
        return [(c.method, c.url.path) for c in self.calls if c.method != "GET"]


def console(stand_in: StandIn) -> TestClient:
    client = TestClient(create_app(transport=httpx.MockTransport(stand_in)))
    client.cookies.set(COOKIE, KEY)
    return client


def created(**body: Any) -> httpx.Response:
    return httpx.Response(201, json=body)


FORMS = [
    pytest.param(
        "admin",
        "/admin/domain",
        {"id": "water", "name": "Water", "owner_department_id": "", "description": ""},
        ("POST", "/catalog/v1/domains", created(id="water")),
        {"id": "water", "name": "Water"},
        "/admin#domains",
        id="domain",
    ),
    pytest.param(
        "admin",
        "/admin/department",
        {
            "id": "water-authority",
            "name": "Water",
            "kind": "bureau",
            "domains": "water, sewage",
            "contact_email": "",
        },
        ("POST", "/catalog/v1/departments", created(id="water-authority")),
        {"id": "water-authority", "name": "Water", "kind": "bureau", "domains": ["water", "sewage"]},
        "/admin#departments",
        id="department",
    ),
    pytest.param(
        "admin",
        "/admin/principal",
        {
            "id": "water-approver",
            "name": "Water approver",
            "kind": "approver",
            "department_id": "water-authority",
        },
        ("POST", "/catalog/v1/principals", created(id="water-approver")),
        {
            "id": "water-approver",
            "kind": "approver",
            "name": "Water approver",
            "department_id": "water-authority",
        },
        "/principals/water-approver",
        id="principal",
    ),
    pytest.param(
        "admin",
        "/scenarios",
        {"id": "street", "name": "Street", "organisation": "Putuo", "contact": "a@b.cn", "description": ""},
        ("POST", "/catalog/v1/scenarios", created(id="street")),
        {"id": "street", "name": "Street", "organisation": "Putuo", "contact": "a@b.cn"},
        "/scenarios/street",
        id="scenario",
    ),
    pytest.param(
        "admin",
        "/scenarios/street/status",
        {"status": "suspended"},
        ("PATCH", "/catalog/v1/scenarios/street", httpx.Response(200, json={"id": "street"})),
        {"status": "suspended"},
        "/scenarios/street",
        id="scenario-status",
    ),
    pytest.param(
        "scenario",
        "/datasets/market.inspections/access-requests",
        {
            "fields": ["district", "result"],
            "purpose": "street view",
            "purpose_category": "research",
            "duration_days": "30",
            "quota_records_per_day": "",
        },
        ("POST", "/catalog/v1/access-requests", created(id="ar-9")),
        {
            "dataset_id": "market.inspections",
            "fields": ["district", "result"],
            "purpose": "street view",
            "purpose_category": "research",
            "duration_days": 30,
        },
        "/access-requests/ar-9",
        id="access-request",
    ),
    pytest.param(
        "scenario",
        "/access-requests/ar-1/withdraw",
        {"reason": ""},
        ("POST", "/catalog/v1/access-requests/ar-1/withdraw", httpx.Response(200, json={"id": "ar-1"})),
        {},
        "/access-requests/ar-1",
        id="withdraw",
    ),
    *(
        pytest.param(
            "approver",
            f"/grants/g-1/{action}",
            {"reason": " quota abuse "},
            ("POST", f"/catalog/v1/grants/g-1/{action}", httpx.Response(200, json=GRANT)),
            {"reason": "quota abuse"},
            "/grants/g-1",
            id=f"grant-{action}",
        )
        for action in ("suspend", "resume", "revoke")
    ),
    pytest.param(
        "approver",
        "/grants/g-1/narrow",
        {
            "field": ["inspection_id", "district"],
            "mask.district": "hash",
            "mask.inspection_id": "",
            "expires_on": "2027-02-01",
            "quota_records_per_day": "1000",
            "reason": "less",
        },
        ("PATCH", "/catalog/v1/grants/g-1", httpx.Response(200, json=GRANT)),
        {
            "reason": "less",
            "fields": ["inspection_id", "district"],
            "masking": {"district": "hash"},
            "expires_at": "2027-02-01T08:00:00+00:00",
            "quota_records_per_day": 1000,
        },
        "/grants/g-1",
        id="grant-narrow",
    ),
    pytest.param(
        "approver",
        "/grants/g-1/narrow",
        {
            "field": ["inspection_id", "inspector_phone"],
            "unmask.inspector_phone": " case handlers call back ",
            "unmask.inspection_id": "",
            "row_filter": 'district in ["Putuo"]',
            "expires_on": "2027-03-01",
            "reason": "one district",
        },
        ("PATCH", "/catalog/v1/grants/g-1", httpx.Response(200, json=GRANT)),
        {
            "reason": "one district",
            "fields": ["inspection_id", "inspector_phone"],
            "unmask": {"inspector_phone": "case handlers call back"},
            "row_filter": 'district in ["Putuo"]',
        },
        "/grants/g-1",
        id="grant-narrow-row-filter-unmask",
    ),
    pytest.param(
        "scenario",
        "/subscriptions",
        {"dataset": "market.inspections", "start": "earliest"},
        ("POST", "/feeds/v1/subscriptions", created(id="sub-1")),
        {"dataset": "market.inspections", "start": "earliest"},
        "/subscriptions/sub-1",
        id="subscribe",
    ),
    *(
        pytest.param(
            "scenario",
            f"/subscriptions/sub-1/{action}",
            {},
            ("POST", f"/feeds/v1/subscriptions/sub-1/{action}", httpx.Response(200, json={"id": "sub-1"})),
            {},
            "/subscriptions/sub-1",
            id=f"subscription-{action}",
        )
        for action in ("pause", "resume")
    ),
    pytest.param(
        "scenario",
        "/subscriptions/sub-1/position",
        {"to": "earliest"},
        ("POST", "/feeds/v1/subscriptions/sub-1/replay", httpx.Response(200, json={"replays": 1})),
        {"to": "earliest"},
        "/subscriptions/sub-1",
        id="subscription-position",
    ),
    pytest.param(
        "scenario",
        "/subscriptions/sub-1/delete",
        {},
        ("DELETE", "/feeds/v1/subscriptions/sub-1", httpx.Response(204)),
        None,
        "/scenarios/one-stop-visit",
        id="subscription-delete",
    ),
    pytest.param(
        "department",
        "/principals/market-publisher/keys/cbk_1/revoke",
        {},
        ("DELETE", "/catalog/v1/principals/market-publisher/keys/cbk_1", httpx.Response(200, json={})),
        None,
        "/department",
        id="department-revokes-its-key",
    ),
    pytest.param(
        "admin",
        "/principals/market-publisher/keys/cbk_1/revoke",
        {},
        ("DELETE", "/catalog/v1/principals/market-publisher/keys/cbk_1", httpx.Response(200, json={})),
        None,
        "/principals/market-publisher",
        id="admin-revokes-a-key",
    ),
]


@pytest.mark.parametrize(("caller", "page", "form", "answer", "body", "then"), FORMS)
def test_a_form_sends_its_body_to_its_service_and_redirects_after_the_post(
    caller: str,
    page: str,
    form: dict[str, Any],
    answer: tuple[str, str, httpx.Response],
    body: Any,
    then: str,
) -> None:
    method, path, response = answer
    stand_in = StandIn(caller, {(method, path): response})
    with console(stand_in) as client:
        submitted = client.post(page, data=form, follow_redirects=False)
    assert submitted.status_code == 303, submitted.text
    assert submitted.headers["location"] == then
    assert stand_in.sent(method, path) == body
    assert stand_in.changes() == [(method, path)]  # one change, nothing else written


@pytest.mark.parametrize(
    ("page", "path"),
    [
        ("/principals/water-publisher/keys", "/catalog/v1/principals/water-publisher/keys"),
        ("/scenarios/street/keys", "/catalog/v1/scenarios/street/keys"),
    ],
)
def test_a_new_key_is_shown_once_on_the_answer_to_the_post_with_a_warning(page: str, path: str) -> None:
    stand_in = StandIn("admin", {("POST", path): httpx.Response(201, json=ISSUED)})
    with console(stand_in) as client:
        shown = client.post(page, data={"name": "ci"}, follow_redirects=False)
    assert shown.status_code == 201
    assert stand_in.sent("POST", path) == {"name": "ci"}
    assert '<code id="issued-key">cbk_12345678_the-secret-part</code>' in shown.text
    assert "it will not be shown again" in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert "location" not in shown.headers


def problem(status: int, slug: str, detail: str, *errors: tuple[str, str]) -> httpx.Response:
    body: dict[str, Any] = {
        "type": f"https://citybase.example/problems/{slug}",
        "title": slug,
        "detail": detail,
    }
    if errors:
        body["errors"] = [{"path": path, "message": message} for path, message in errors]
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def test_a_refused_form_shows_the_problem_and_each_fields_error_next_to_it_and_keeps_the_inputs() -> None:
    refusal = problem(422, "validation-error", "The request is not valid.", ("/body/id", "must be a slug"))
    stand_in = StandIn("admin", {("POST", "/catalog/v1/principals"): refusal})
    with console(stand_in) as client:
        page = client.post(
            "/admin/principal",
            data={"id": "Not A Slug", "name": "Water <approver>", "kind": "operator", "department_id": ""},
            follow_redirects=False,
        )
    assert page.status_code == 422
    assert 'id="principal-error"' in page.text
    assert "The request is not valid." in page.text
    assert '<span class="field-error" data-field="id">must be a slug</span>' in page.text
    assert 'value="Not A Slug"' in page.text
    assert 'value="Water &lt;approver&gt;"' in page.text  # kept, and escaped
    assert 'value="operator" id="principal-kind-operator" checked' in page.text
    # the other forms of the page are not blamed
    assert 'id="domain-error"' not in page.text


@pytest.mark.parametrize("status", [403, 409])
def test_a_refusal_by_the_catalog_is_shown_on_the_grant_page(status: int) -> None:
    refusal = problem(
        status, "not-the-owning-department", "market.inspections belongs to another department."
    )
    stand_in = StandIn("approver", {("POST", "/catalog/v1/grants/g-1/revoke"): refusal})
    with console(stand_in) as client:
        page = client.post("/grants/g-1/revoke", data={"reason": "done"}, follow_redirects=False)
    assert page.status_code == status
    assert 'id="revoke-error"' in page.text
    assert "belongs to another department" in page.text
    assert 'id="narrow-form"' in page.text


def test_a_narrowing_the_catalog_refuses_keeps_the_fields_and_masks_chosen() -> None:
    refusal = problem(
        422, "fields-not-requested", "inspected_at was not requested.", ("/body/fields/1", "not requested")
    )
    stand_in = StandIn("approver", {("PATCH", "/catalog/v1/grants/g-1"): refusal})
    with console(stand_in) as client:
        page = client.post(
            "/grants/g-1/narrow",
            data={
                "field": ["district"],
                "mask.district": "redact",
                "reason": "less",
                "expires_on": "2027-03-01",
            },
            follow_redirects=False,
        )
    assert page.status_code == 422
    assert stand_in.sent("PATCH", "/catalog/v1/grants/g-1") == {
        "reason": "less",
        "fields": ["district"],
        "masking": {"district": "redact"},
    }
    assert 'value="district" id="narrow-field-district" checked' in page.text
    assert 'value="inspection_id" id="narrow-field-inspection_id" >' in page.text  # unchecked now
    assert '<option value="redact" selected>' in page.text
    assert '<span class="field-error" data-field="fields">not requested</span>' in page.text


@pytest.mark.parametrize(
    ("caller", "page"),
    [
        ("operator", "/admin/domain"),
        ("scenario", "/admin/principal"),
        ("approver", "/scenarios"),
        ("department", "/datasets/market.inspections/access-requests"),
        ("operator", "/grants/g-1/revoke"),
        ("scenario", "/principals/market-publisher/keys"),
        ("approver", "/subscriptions"),
    ],
)
def test_a_form_is_not_for_every_role_and_nothing_is_sent(caller: str, page: str) -> None:
    stand_in = StandIn(caller)
    with console(stand_in) as client:
        refused = client.post(page, data={"reason": "x", "id": "x", "name": "x"}, follow_redirects=False)
    assert refused.status_code == 403
    assert "Not for your role" in refused.text
    assert stand_in.changes() == []


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Referer": "https://evil.example/page"}],
)
def test_a_form_sent_from_another_site_is_refused_before_anything_is_sent(headers: dict[str, str]) -> None:
    stand_in = StandIn("admin", {("POST", "/catalog/v1/domains"): created(id="water")})
    with console(stand_in) as client:
        refused = client.post(
            "/admin/domain", data={"id": "water", "name": "W"}, headers=headers, follow_redirects=False
        )
        own = client.post(
            "/admin/domain",
            data={"id": "water", "name": "W"},
            headers={"Origin": "http://testserver", "Referer": "https://evil.example/"},
            follow_redirects=False,
        )
    assert refused.status_code == 403
    assert "not sent from a page of this console" in refused.text
    assert own.status_code == 303  # Origin decides when both are sent
    assert stand_in.changes() == [("POST", "/catalog/v1/domains")]


def test_the_services_are_asked_in_the_readers_language() -> None:
    stand_in = StandIn("admin")
    with console(stand_in) as client:
        client.get("/admin?lang=zh-CN")
    assert {c.headers["accept-language"] for c in stand_in.calls} == {"zh-CN"}


def test_a_form_with_a_file_is_read_field_by_field_the_file_as_its_text() -> None:
    boundary = "----citybase"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="document"\r\n\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="upload"; filename="c.yaml"\r\n'
        "Content-Type: application/yaml\r\n\r\n"
        "id: market.price-checks\nversion: 1.0.0\nname: 价格检查\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    fields = forms.multipart(f"multipart/form-data; boundary={boundary}", body)
    assert fields["document"] == [""]
    assert fields["upload"] == ["id: market.price-checks\nversion: 1.0.0\nname: 价格检查\n"]
    document = forms.contract_document(fields)
    assert (document.dataset_id, document.version, document.media_type) == (
        "market.price-checks",
        "1.0.0",
        "application/yaml",
    )
    assert forms.multipart("multipart/form-data; boundary=x", b"not multipart") == {}


def test_a_contract_problem_points_at_its_line_in_what_was_pasted() -> None:
    text = "id: market.price-checks\nschema:\n  - name: checks\n    properties:\n      - name: a\n        logicalType: colour\n"
    document = forms.contract_document({"document": [text]})
    assert document.line_of("/schema/0/properties/0/logicalType") == 6
    assert document.line_of("/schema/0/properties/0/required") == 5  # missing: the nearest there
    assert document.line_of("/schema/7") == 3  # no such item: the list it is missing from
    assert forms.contract_document({"document": ["{not: [yaml"]}).line_of("/id") is None
    pasted_json = forms.contract_document({"document": [' {"id": "a.b", "version": 2}']})
    assert (pasted_json.dataset_id, pasted_json.version, pasted_json.media_type) == (
        "a.b",
        "2",
        "application/json",
    )


def test_an_approval_carries_the_fields_in_clear_with_their_reasons_and_the_row_filter() -> None:
    body = forms.approval(
        {
            "field": ["inspection_id", "inspector_phone"],
            "mask.inspection_id": ["hash"],
            "unmask.inspector_phone": [" case handlers call back "],
            "unmask.district": ["not granted: left out"],
            "row_filter": ['district in ["Putuo"]'],
            "duration_days": ["30"],
            "reason": ["ok"],
        }
    )
    assert body == {
        "reason": "ok",
        "fields": ["inspection_id", "inspector_phone"],
        "masking": {"inspection_id": "hash"},
        "unmask": {"inspector_phone": "case handlers call back"},
        "row_filter": 'district in ["Putuo"]',
        "duration_days": 30,
    }
