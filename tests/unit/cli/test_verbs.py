"""``citybase <noun> <verb>`` against a scripted platform (an ``httpx.MockTransport``): the request
each verb sends, its table and its JSON, a refusal's exit code and message, and Chinese."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from citybase import connection
from citybase.cli import app

KEY = "cbk_0123abcd_secret"
runner = CliRunner()

DOMAIN = {"id": "water", "name": "Water", "description": "", "owner_department_id": "water-authority"}
DEPARTMENT = {
    "id": "water-authority",
    "name": "Water Authority",
    "kind": "bureau",
    "domains": ["water"],
    "contact_email": None,
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
PRINCIPAL = {
    "id": "water-approver",
    "kind": "approver",
    "name": "Water approver",
    "department_id": "water-authority",
    "status": "active",
    "created_at": "2026-12-07T10:00:00Z",
}
API_KEY = {
    "prefix": "cbk_9f8e7d6c",
    "principal_id": "water-approver",
    "name": "laptop",
    "issued_by": None,
    "created_at": "2026-12-07T10:00:00Z",
    "revoked_at": None,
}
SCENARIO = {
    "id": "leak-watch",
    "name": "Leak watch",
    "organisation": "Water Lab",
    "description": "",
    "contact": "lab@example.cn",
    "status": "active",
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
REQUEST = {
    "id": "req_1",
    "scenario_id": "leak-watch",
    "dataset_id": "water.meter-readings",
    "contract_version": "1.0.0",
    "purpose": "Find leaks",
    "purpose_category": "public_service",
    "fields": ["reading_id", "litres"],
    "duration_days": 30,
    "quota_records_per_day": None,
    "status": "approved",
    "requested_by": "leak-watch",
    "decided_by": "water-approver",
    "decided_at": "2026-12-07T10:00:00Z",
    "decision_reason": "fine",
    "grant_id": "grt_1",
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
GRANT = {
    "id": "grt_1",
    "version": 2,
    "scenario_id": "leak-watch",
    "dataset_id": "water.meter-readings",
    "request_id": "req_1",
    "contract_version": "1.0.0",
    "status": "active",
    "fields": ["reading_id", "litres"],
    "masking": {"meter_id": {"kind": "hash"}},
    "unmasked": {},
    "row_filter": None,
    "valid_from": "2026-12-07T10:00:00Z",
    "expires_at": "2027-01-06T10:00:00Z",
    "quota": None,
    "purpose": "Find leaks",
    "purpose_category": "public_service",
    "status_reason": None,
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
SUBSCRIPTION = {
    "id": "sub_1",
    "dataset": "water.meter-readings",
    "scenario_id": "leak-watch",
    "grant_id": "grt_1",
    "status": "active",
    "status_reason": None,
    "mode": "pull",
    "webhook_url": None,
    "start": {"position": "latest"},
    "replays": 0,
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
    "grant": {"id": "grt_1", "version": 2, "status": "active", "expires_at": "2027-01-06T10:00:00Z"},
    "positions": [{"partition": 0, "committed": 120, "end": 125, "lag": 5}],
    "lag": 5,
}
WEBHOOK = {**SUBSCRIPTION, "id": "sub_2", "mode": "webhook", "webhook_url": "https://hooks.example.cn/x"}
DELIVERY = {
    "id": 1,
    "attempted_at": "2026-12-07T10:00:00Z",
    "attempt": 1,
    "outcome": "failed",
    "http_status": 503,
    "error": "HTTP 503",
    "records": 10,
    "cursor": None,
    "duration_ms": 12,
}


def page(*items: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(items), "next_cursor": None}


@dataclass
class Platform:
    """A scripted platform: the answer to give, and every request the CLI sent."""

    answer: Any = None
    status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status == 204:
            return httpx.Response(204)
        media = "application/problem+json" if self.status >= 400 else "application/json"
        return httpx.Response(self.status, json=self.answer, headers={"content-type": media})

    @property
    def body(self) -> Any:
        """The body of the verb's own request (the first: a verb may read something after it)."""
        content = self.requests[0].content
        return json.loads(content) if content else None


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    scripted = Platform()
    monkeypatch.setattr(connection, "TRANSPORT", httpx.MockTransport(scripted.handle))
    return scripted


def cli(*args: str, **env: str) -> Any:
    return runner.invoke(app, list(args), env={"CITYBASE_API_KEY": KEY, "COLUMNS": "200", **env})


C = "/catalog/v1"
F = "/feeds/v1"
VERBS: list[tuple[list[str], str, str, Any, Any, str]] = [
    # command line, method, path (and query), body sent, answer, a value the table shows
    (["domains", "list"], "GET", f"{C}/domains", None, [DOMAIN], "water-authority"),
    (
        ["domains", "create", "water", "--name", "Water", "--owner", "water-authority"],
        "POST",
        f"{C}/domains",
        {"id": "water", "name": "Water", "description": "", "owner_department_id": "water-authority"},
        DOMAIN,
        "Water",
    ),
    (["departments", "list"], "GET", f"{C}/departments", None, [DEPARTMENT], "Water Authority"),
    (
        [
            "departments",
            "create",
            "water-authority",
            "--name",
            "Water Authority",
            "--kind",
            "bureau",
            "--domain",
            "water",
            "--domain",
            "sewage",
        ],
        "POST",
        f"{C}/departments",
        {
            "id": "water-authority",
            "name": "Water Authority",
            "kind": "bureau",
            "domains": ["water", "sewage"],
            "contact_email": None,
        },
        DEPARTMENT,
        "bureau",
    ),
    (
        ["principals", "list", "--kind", "approver"],
        "GET",
        f"{C}/principals?kind=approver",
        None,
        [PRINCIPAL],
        "water-approver",
    ),
    (
        [
            "principals",
            "create",
            "water-approver",
            "--kind",
            "approver",
            "--name",
            "Water approver",
            "--department",
            "water-authority",
        ],
        "POST",
        f"{C}/principals",
        {
            "id": "water-approver",
            "kind": "approver",
            "name": "Water approver",
            "department_id": "water-authority",
        },
        PRINCIPAL,
        "keys issue water-approver",
    ),
    (
        ["keys", "issue", "water-approver", "--name", "laptop"],
        "POST",
        f"{C}/principals/water-approver/keys",
        {"name": "laptop"},
        {**API_KEY, "key": "cbk_9f8e7d6c_thekey"},
        "cbk_9f8e7d6c_thekey",
    ),
    (
        ["keys", "list", "water-approver"],
        "GET",
        f"{C}/principals/water-approver/keys",
        None,
        [API_KEY],
        "cbk_9f8e7d6c",
    ),
    (
        ["keys", "revoke", "water-approver", "cbk_9f8e7d6c"],
        "DELETE",
        f"{C}/principals/water-approver/keys/cbk_9f8e7d6c",
        None,
        {**API_KEY, "revoked_at": "2026-12-07T11:00:00Z"},
        "11:00:00",
    ),
    (
        ["scenarios", "list", "--status", "active"],
        "GET",
        f"{C}/scenarios?status=active",
        None,
        [SCENARIO],
        "Leak watch",
    ),
    (
        ["scenarios", "show", "leak-watch"],
        "GET",
        f"{C}/scenarios/leak-watch",
        None,
        SCENARIO,
        "lab@example.cn",
    ),
    (
        [
            "scenarios",
            "create",
            "leak-watch",
            "--name",
            "Leak watch",
            "--organisation",
            "Water Lab",
            "--contact",
            "lab@example.cn",
        ],
        "POST",
        f"{C}/scenarios",
        {
            "id": "leak-watch",
            "name": "Leak watch",
            "organisation": "Water Lab",
            "contact": "lab@example.cn",
            "description": "",
        },
        SCENARIO,
        "Water Lab",
    ),
    (
        ["scenarios", "suspend", "leak-watch"],
        "PATCH",
        f"{C}/scenarios/leak-watch",
        {"status": "suspended"},
        {**SCENARIO, "status": "suspended"},
        "suspended",
    ),
    (
        ["scenarios", "resume", "leak-watch"],
        "PATCH",
        f"{C}/scenarios/leak-watch",
        {"status": "active"},
        SCENARIO,
        "active",
    ),
    (
        ["scenarios", "retire", "leak-watch"],
        "PATCH",
        f"{C}/scenarios/leak-watch",
        {"status": "retired"},
        {**SCENARIO, "status": "retired"},
        "retired",
    ),
    (
        ["requests", "list", "--status", "pending", "--dataset", "water.meter-readings"],
        "GET",
        f"{C}/access-requests?dataset_id=water.meter-readings&status=pending&limit=50",
        None,
        page(REQUEST),
        "req_1",
    ),
    (["requests", "show", "req_1"], "GET", f"{C}/access-requests/req_1", None, REQUEST, "Find leaks"),
    (
        [
            "requests",
            "create",
            "--dataset",
            "water.meter-readings",
            "--purpose",
            "Find leaks",
            "--category",
            "public_service",
            "--field",
            "reading_id",
            "--field",
            "litres",
            "--duration-days",
            "30",
        ],
        "POST",
        f"{C}/access-requests",
        {
            "scenario_id": None,
            "dataset_id": "water.meter-readings",
            "purpose": "Find leaks",
            "purpose_category": "public_service",
            "fields": ["reading_id", "litres"],
            "duration_days": 30,
            "quota_records_per_day": None,
        },
        {**REQUEST, "status": "pending", "grant_id": None},
        "pending",
    ),
    (
        [
            "requests",
            "approve",
            "req_1",
            "--reason",
            "fine",
            "--field",
            "reading_id",
            "--mask",
            "meter_id=hash",
            "--mask",
            'phone={"kind": "partial", "keepPrefix": 3}',
            "--row-filter",
            'district in ["Putuo"]',
            "--duration-days",
            "7",
        ],
        "POST",
        f"{C}/access-requests/req_1/approve",
        {
            "reason": "fine",
            "fields": ["reading_id"],
            "masking": {"meter_id": "hash", "phone": {"kind": "partial", "keepPrefix": 3}},
            "row_filter": 'district in ["Putuo"]',
            "duration_days": 7,
        },
        REQUEST,
        "citybase grants show grt_1",
    ),
    (
        ["requests", "reject", "req_1", "--reason", "no"],
        "POST",
        f"{C}/access-requests/req_1/reject",
        {"reason": "no"},
        {**REQUEST, "status": "rejected"},
        "rejected",
    ),
    (
        ["requests", "withdraw", "req_1"],
        "POST",
        f"{C}/access-requests/req_1/withdraw",
        {"reason": None},
        {**REQUEST, "status": "withdrawn"},
        "withdrawn",
    ),
    (
        ["grants", "list", "--scenario", "leak-watch"],
        "GET",
        f"{C}/grants?scenario_id=leak-watch&limit=50",
        None,
        page(GRANT),
        "grt_1",
    ),
    (["grants", "show", "grt_1"], "GET", f"{C}/grants/grt_1", None, GRANT, '{"kind": "hash"}'),
    (
        ["grants", "suspend", "grt_1", "--reason", "audit"],
        "POST",
        f"{C}/grants/grt_1/suspend",
        {"reason": "audit"},
        {**GRANT, "status": "suspended"},
        "suspended",
    ),
    (
        ["grants", "resume", "grt_1", "--reason", "ok"],
        "POST",
        f"{C}/grants/grt_1/resume",
        {"reason": "ok"},
        GRANT,
        "active",
    ),
    (
        ["grants", "revoke", "grt_1", "--reason", "ended"],
        "POST",
        f"{C}/grants/grt_1/revoke",
        {"reason": "ended"},
        {**GRANT, "status": "revoked"},
        "revoked",
    ),
    (
        [
            "grants",
            "narrow",
            "grt_1",
            "--reason",
            "less",
            "--field",
            "reading_id",
            "--expires-at",
            "2026-12-31T00:00:00Z",
        ],
        "PATCH",
        f"{C}/grants/grt_1",
        {"reason": "less", "fields": ["reading_id"], "expires_at": "2026-12-31T00:00:00Z"},
        {**GRANT, "fields": ["reading_id"]},
        "reading_id",
    ),
    (["subscriptions", "list"], "GET", f"{F}/subscriptions", None, {"items": [SUBSCRIPTION]}, "sub_1"),
    (
        ["subscriptions", "create", "--dataset", "water.meter-readings", "--start", "earliest"],
        "POST",
        f"{F}/subscriptions",
        {"dataset": "water.meter-readings", "start": "earliest"},
        SUBSCRIPTION,
        "/feeds/v1/subscriptions/sub_1/records",
    ),
    (
        ["subscriptions", "pause", "sub_1"],
        "POST",
        f"{F}/subscriptions/sub_1/pause",
        {},
        {**SUBSCRIPTION, "status": "paused"},
        "paused",
    ),
    (
        ["subscriptions", "resume", "sub_1"],
        "POST",
        f"{F}/subscriptions/sub_1/resume",
        {},
        SUBSCRIPTION,
        "active",
    ),
    (["subscriptions", "delete", "sub_1"], "DELETE", f"{F}/subscriptions/sub_1", None, None, "deleted sub_1"),
    (["subscriptions", "position", "sub_1"], "GET", f"{F}/subscriptions/sub_1", None, SUBSCRIPTION, "120"),
    (
        ["webhooks", "list"],
        "GET",
        f"{F}/subscriptions",
        None,
        {"items": [SUBSCRIPTION, WEBHOOK]},
        "https://hooks.example.cn/x",
    ),
    (
        ["webhooks", "create", "--dataset", "water.meter-readings", "--target", "https://hooks.example.cn/x"],
        "POST",
        f"{F}/subscriptions",
        {
            "dataset": "water.meter-readings",
            "start": "latest",
            "webhook": {"url": "https://hooks.example.cn/x"},
        },
        {**WEBHOOK, "webhook_secret": "whsec_once"},
        "whsec_once",
    ),
    (
        ["webhooks", "deliveries", "sub_2"],
        "GET",
        f"{F}/subscriptions/sub_2/deliveries?limit=20",
        None,
        {"items": [DELIVERY]},
        "HTTP 503",
    ),
]


@pytest.mark.parametrize(
    ("args", "method", "path", "body", "answer", "shown"), VERBS, ids=[" ".join(v[0]) for v in VERBS]
)
def test_each_verb_sends_its_request_and_prints_a_table(
    platform: Platform, args: list[str], method: str, path: str, body: Any, answer: Any, shown: str
) -> None:
    platform.answer = answer
    platform.status = 204 if answer is None else 200
    result = cli(*args)
    assert result.exit_code == 0, result.output
    sent = platform.requests[0]
    assert (sent.method, sent.url.raw_path.decode()) == (method, path)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept-language"] == "en"
    assert platform.body == body
    assert shown in result.output


@pytest.mark.parametrize(
    ("args", "answer"),
    [(v[0], v[4]) for v in VERBS if v[4] is not None and v[0] != ["webhooks", "list"]],
    ids=[" ".join(v[0]) for v in VERBS if v[4] is not None and v[0] != ["webhooks", "list"]],
)
def test_each_verb_prints_the_platforms_json_with_json(
    platform: Platform, args: list[str], answer: Any
) -> None:
    platform.answer = answer
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == answer


def test_webhooks_list_shows_only_the_subscriptions_that_push(platform: Platform) -> None:
    platform.answer = {"items": [SUBSCRIPTION, WEBHOOK]}
    result = cli("webhooks", "list", "--json")
    assert json.loads(result.stdout) == [WEBHOOK]


def test_a_refusal_prints_title_detail_and_each_field_error_and_exits_1(platform: Platform) -> None:
    platform.status = 422
    platform.answer = {
        "type": "https://citybase.dev/problems/invalid-mask",
        "title": "Invalid mask",
        "status": 422,
        "detail": "a mask names a field that is not granted",
        "errors": [
            {"path": "/body/masking/phone", "rule": "invalid-mask", "message": "phone is not granted"}
        ],
    }
    result = cli("requests", "approve", "req_1", "--reason", "ok", "--mask", "phone=hash")
    assert result.exit_code == 1
    assert "422 Invalid mask: a mask names a field that is not granted" in result.stderr
    assert "/body/masking/phone: phone is not granted" in result.stderr
    assert result.stdout == ""


def test_a_server_failure_exits_3_and_no_answer_exits_3(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.status = 503
    platform.answer = {"title": "Bus unavailable", "status": 503}
    assert cli("domains", "list").exit_code == 3

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(connection, "TRANSPORT", httpx.MockTransport(refuse))
    result = cli("domains", "list")
    assert result.exit_code == 3
    assert "no answer from http://127.0.0.1:8000" in result.stderr


def test_no_key_is_a_usage_error_before_any_call(platform: Platform) -> None:
    result = runner.invoke(app, ["grants", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "an API key is needed" in result.stderr
    assert platform.requests == []


def test_a_mask_that_is_not_a_pair_is_a_usage_error(platform: Platform) -> None:
    result = cli("grants", "narrow", "grt_1", "--reason", "x", "--mask", "phone")
    assert result.exit_code == 2
    assert platform.requests == []


def test_chinese_from_the_flag_or_the_locale_reaches_the_table_and_the_platform(platform: Platform) -> None:
    platform.answer = page(GRANT)
    flagged = cli("grants", "list", "--lang", "zh-CN")
    assert flagged.exit_code == 0, flagged.output
    assert platform.requests[-1].headers["accept-language"] == "zh-CN"
    assert "数据集" in flagged.output and "状态" in flagged.output
    from_locale = cli("grants", "list", LANG="zh_CN.UTF-8")
    assert platform.requests[-1].headers["accept-language"] == "zh-CN"
    assert from_locale.output == flagged.output
    english = cli("grants", "list", CITYBASE_LANG="en", LANG="zh_CN.UTF-8")
    assert "Dataset" in english.output


def test_a_refusal_in_chinese_prints_what_the_platform_said_and_chinese_help(platform: Platform) -> None:
    platform.status = 403
    platform.answer = {"title": "无权操作", "status": 403, "detail": "不是该数据集所属部门的审批人"}
    result = cli("requests", "approve", "req_1", "--reason", "好", LANG="zh_CN.UTF-8")
    assert result.exit_code == 1
    assert "403 无权操作: 不是该数据集所属部门的审批人" in result.stderr
    helped = cli("grants", "narrow", "--help", LANG="zh_CN.UTF-8")
    assert "退出码" in helped.output and "--row-filter" in helped.output


def test_contracts_register_to_a_missing_domain_names_it_and_the_command_that_creates_it(
    platform: Platform, tmp_path: Any
) -> None:
    from tests.support.contracts import as_yaml, contract_document

    contract = tmp_path / "water.yaml"
    contract.write_text(as_yaml(contract_document(id="water.meter-readings", domain="water")))
    platform.status = 404
    platform.answer = {
        "type": "https://citybase.dev/problems/domain-not-found",
        "title": "Domain not found",
        "status": 404,
        "detail": "no domain 'water': the part of the id before the dot",
    }
    result = cli("contracts", "register", str(contract), "--url", "http://city.example:8000/catalog")
    assert result.exit_code == 1
    assert str(platform.requests[-1].url) == "http://city.example:8000/catalog/v1/contracts"
    assert "404 Domain not found" in result.stderr
    assert "The domain water of water.meter-readings does not exist" in result.output
    assert "citybase domains create water --name NAME --owner DEPARTMENT" in result.output


def test_login_checks_the_key_and_keeps_it_readable_by_its_owner_only(
    platform: Platform, clean_cli_environment: Any
) -> None:
    platform.answer = {"id": "admin", "kind": "admin", "name": "Admin", "department_id": None}
    result = runner.invoke(app, ["login", "--url", "http://city.example:8000/", "--key", KEY])
    assert result.exit_code == 0, result.output
    assert platform.requests[-1].url.path == "/catalog/v1/me"
    config = clean_cli_environment
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert connection.read_config(config) == connection.Config(url="http://city.example:8000", key=KEY)
    platform.answer = [DOMAIN]
    listed = runner.invoke(app, ["domains", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert str(platform.requests[-1].url) == "http://city.example:8000/catalog/v1/domains"
    assert platform.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    flag = runner.invoke(
        app, ["domains", "list", "--url", "http://other:1"], env={"CITYBASE_URL": "http://env:2"}
    )
    assert flag.exit_code == 0
    assert platform.requests[-1].url.host == "other"


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in getattr(group, "commands", {}).items():
        yield (*path, name), command
        yield from _commands(command, (*path, name))


def test_help_at_80_columns_shows_every_option_name_whole() -> None:
    import typer

    root = typer.main.get_command(app)
    cut = {}
    for path, command in _commands(root):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        names = [opt for param in command.params for opt in param.opts if opt.startswith("--")]
        missing = [
            name for name in names if f"{name} " not in result.output and f"{name}\n" not in result.output
        ]
        if missing or "…" in result.output:
            cut[" ".join(path)] = missing
    assert not cut


# --- citybase needs -------------------------------------------------------------------------------

NEED = {
    "id": "nd-0192c3d4e5f6a7b8c9d0e1",
    "title": "Free hospital beds",
    "description": "",
    "domains": ["health"],
    "data_wanted": "Free beds per ward",
    "dataset_ids": [],
    "fields": [],
    "purpose_category": "public_service",
    "serves": "Outpatients",
    "frequency": "high",
    "urgency": "urgent",
    "status": "committed",
    "department_id": "health-commission",
    "filed_by": "one-stop-visit",
    "from_resident": False,
    "answer": {"kind": "commit", "commit_by": "2027-01-31"},
    "commit_by": "2027-01-31",
    "overdue": False,
    "moderation_reason": None,
    "requesters": [
        {
            "principal_id": "one-stop-visit",
            "principal_kind": "scenario",
            "purpose": "Route",
            "created_at": "2026-12-07T10:00:00Z",
        }
    ],
    "followers": 1,
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
NEED_PATH = f"{C}/needs/{NEED['id']}"
NEEDS_VERBS: list[tuple[list[str], str, str, Any, Any, str]] = [
    (
        ["needs", "list", "--status", "open", "--domain", "health"],
        "GET",
        f"{C}/needs?status=open&domain=health&limit=50",
        None,
        page(NEED),
        "health-commission",
    ),
    (["needs", "show", NEED["id"]], "GET", NEED_PATH, None, NEED, "Outpatients"),
    (
        [
            "needs",
            "file",
            "--title",
            "Free hospital beds",
            "--domain",
            "health",
            "--data-wanted",
            "Free beds per ward",
            "--purpose",
            "Route",
            "--serves",
            "Outpatients",
            "--urgency",
            "urgent",
        ],
        "POST",
        f"{C}/needs",
        {
            "title": "Free hospital beds",
            "description": "",
            "domains": ["health"],
            "data_wanted": "Free beds per ward",
            "dataset_ids": [],
            "purpose": "Route",
            "purpose_category": "public_service",
            "serves": "Outpatients",
            "frequency": "medium",
            "urgency": "urgent",
        },
        {
            "need": NEED,
            "similar": [
                {
                    "id": "nd-0192c3d4e5f6a7b8c9d0e2",
                    "title": "Beds now",
                    "status": "open",
                    "requesters": 2,
                    "score": 2,
                }
            ],
        },
        "nd-0192c3d4e5f6a7b8c9d0e2",
    ),
    (
        ["needs", "join", NEED["id"], "--purpose", "Tell residents"],
        "POST",
        f"{NEED_PATH}/join",
        {"purpose": "Tell residents"},
        NEED,
        "committed",
    ),
    (
        ["needs", "comment", NEED["id"], "--body", "When?"],
        "POST",
        f"{NEED_PATH}/comments",
        {"body": "When?"},
        {
            "id": "nc-1",
            "need_id": NEED["id"],
            "author_id": "ai-community",
            "body": "When?",
            "hidden_reason": None,
            "created_at": "2026-12-07T10:00:00Z",
        },
        "ai-community",
    ),
    (
        ["needs", "follow", NEED["id"]],
        "POST",
        f"{NEED_PATH}/follow",
        {},
        {"need_id": NEED["id"], "principal_id": "x", "following": True},
        "True",
    ),
    (
        ["needs", "follow", NEED["id"], "--webhook", "https://hooks.example.cn/needs"],
        "POST",
        f"{NEED_PATH}/follow",
        {"webhook": {"url": "https://hooks.example.cn/needs"}},
        {
            "need_id": NEED["id"],
            "principal_id": "x",
            "following": True,
            "webhook_url": "https://hooks.example.cn/needs",
            "webhook_secret": "whsec_shown-once",
        },
        "whsec_shown-once",
    ),
    (
        ["needs", "deliveries", NEED["id"]],
        "GET",
        f"{NEED_PATH}/follow/deliveries?limit=50",
        None,
        [
            {
                "id": 7,
                "notice_id": "nn-0192c3d4e5f6a7b8c9d0e2",
                "url": "https://hooks.example.cn/needs",
                "status": "failed",
                "attempts": 8,
                "http_status": 503,
                "last_error": "HTTP 503",
                "next_attempt_at": None,
                "created_at": "2026-12-07T10:00:00Z",
                "updated_at": "2026-12-07T10:30:00Z",
            }
        ],
        "HTTP 503",
    ),
    (
        ["needs", "follow", NEED["id"], "--stop"],
        "POST",
        f"{NEED_PATH}/unfollow",
        {},
        {"need_id": NEED["id"], "principal_id": "x", "following": False},
        "False",
    ),
    (
        ["needs", "answer", NEED["id"], "commit", "--by", "2027-01-31", "--dataset", "health.beds"],
        "POST",
        f"{NEED_PATH}/commit",
        {"commit_by": "2027-01-31", "dataset_id": "health.beds", "note": None},
        NEED,
        "committed",
    ),
    (
        ["needs", "answer", NEED["id"], "offer", "--dataset", "health.beds"],
        "POST",
        f"{NEED_PATH}/offer",
        {"dataset_id": "health.beds", "note": None},
        NEED,
        "committed",
    ),
    (
        ["needs", "answer", NEED["id"], "decline", "--reason", "Not collected"],
        "POST",
        f"{NEED_PATH}/decline",
        {"reason": "Not collected"},
        NEED,
        "committed",
    ),
]


@pytest.mark.parametrize(
    ("args", "method", "path", "body", "answer", "shown"), VERBS, ids=[" ".join(v[0][:3]) for v in VERBS]
)
def test_each_needs_verb_sends_its_request_and_prints_a_table(
    platform: Platform, args: list[str], method: str, path: str, body: Any, answer: Any, shown: str
) -> None:
    platform.answer = answer
    result = cli(*args)
    assert result.exit_code == 0, result.output
    sent = platform.requests[0]
    assert (sent.method, sent.url.raw_path.decode()) == (method, path)
    assert platform.body == body
    assert shown in result.output


def test_needs_show_prints_the_platforms_json_with_json(platform: Platform) -> None:
    platform.answer = NEED
    result = cli("needs", "show", NEED["id"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == NEED


# --- the scenario programme: lists, applicants, proposals, stages -------------------------

OPENING = {
    "id": "on-1",
    "list_id": "q1-2027",
    "position": 1,
    "title": "Wait-aware booking",
    "description": "",
    "owner_department_id": "health-commission",
    "datasets": ["health.outpatient-visits"],
    "data_offered": "",
    "conditions": "",
    "deadline": "2027-03-31T00:00:00Z",
    "need_ids": [],
    "domains": [],
    "serves_residents": True,
    "status": "open",
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
LIST = {
    "id": "q1-2027",
    "number": 3,
    "title": "2027 Q1, transport and health",
    "summary": "",
    "status": "published",
    "published_at": "2026-12-07T10:00:00Z",
    "created_by": "city-ops",
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
    "openings": [OPENING],
}
APPLICANT = {
    "id": "river-tech",
    "name": "River Tech",
    "description": "",
    "contact": "bids@river.example.cn",
    "status": "vetted",
    "vetting_reason": "checked",
    "vetted_by": "city-ops",
    "vetted_at": "2026-12-07T10:00:00Z",
    "created_at": "2026-12-07T10:00:00Z",
    "updated_at": "2026-12-07T10:00:00Z",
}
PROPOSAL = {
    "id": "pr-1",
    "opening_id": "on-1",
    "applicant_id": "river-tech",
    "title": "Queue display",
    "status": "selected",
    "timeline": "3 months",
    "scenario_id": "river-tech-q1-2027-1",
    "datasets": [{"dataset_id": "health.outpatient-visits", "fields": ["clinic"]}],
}
STAGED_SCENARIO = {
    "id": "elder-meals",
    "name": "Meals",
    "organisation": "Jing'an",
    "status": "active",
    "stage": "building",
    "contact": "c",
}
STAGE = {
    "scenario_id": "elder-meals",
    "stage": "building",
    "previous_stage": "approved",
    "reason": "team ready",
    "changed_by": "elder-meals",
    "changed_at": "2026-12-07T10:00:00Z",
}

VERBS: list[tuple[list[str], str, str, Any, Any, str]] = [
    (["lists", "list"], "GET", f"{C}/opportunity-lists", None, {"items": [LIST]}, "2027 Q1"),
    (["lists", "show", "q1-2027"], "GET", f"{C}/opportunity-lists/q1-2027", None, LIST, "Wait-aware booking"),
    (
        ["lists", "create", "q1-2027", "--title", "2027 Q1, transport and health"],
        "POST",
        f"{C}/opportunity-lists",
        {"id": "q1-2027", "title": "2027 Q1, transport and health", "summary": ""},
        {**LIST, "status": "draft", "number": None},
        "draft",
    ),
    (
        [
            "lists",
            "add-opening",
            "q1-2027",
            "--title",
            "Wait-aware booking",
            "--owner",
            "health-commission",
            "--deadline",
            "2027-03-31T00:00:00Z",
            "--dataset",
            "health.outpatient-visits",
            "--serves-residents",
        ],
        "POST",
        f"{C}/opportunity-lists/q1-2027/openings",
        {
            "title": "Wait-aware booking",
            "description": "",
            "owner_department_id": "health-commission",
            "datasets": ["health.outpatient-visits"],
            "data_offered": "",
            "conditions": "",
            "deadline": "2027-03-31T00:00:00Z",
            "need_ids": [],
            "domains": [],
            "serves_residents": True,
        },
        LIST,
        "health-commission",
    ),
    (
        ["lists", "publish", "q1-2027"],
        "POST",
        f"{C}/opportunity-lists/q1-2027/publish",
        {},
        LIST,
        "published",
    ),
    (
        ["applicants", "list", "--status", "pending"],
        "GET",
        f"{C}/applicants?status=pending",
        None,
        [{**APPLICANT, "status": "pending"}],
        "river-tech",
    ),
    (
        ["applicants", "vet", "river-tech", "--reason", "checked"],
        "POST",
        f"{C}/applicants/river-tech/vetting",
        {"decision": "vetted", "reason": "checked"},
        {"applicant": APPLICANT, "key": {"prefix": "0a1b2c3d", "key": "cbk_0a1b2c3d_once"}},
        "cbk_0a1b2c3d_once",
    ),
    (
        ["proposals", "compare", "on-1"],
        "GET",
        f"{C}/openings/on-1/proposals",
        None,
        {
            "opening": OPENING,
            "proposals": [PROPOSAL],
            "fields_asked": {"health.outpatient-visits": {"clinic": ["pr-1"]}},
        },
        "clinic",
    ),
    (
        ["proposals", "select", "on-1", "--proposal", "pr-1", "--reason", "best plan"],
        "POST",
        f"{C}/openings/on-1/selection",
        {"proposal_ids": ["pr-1"], "reason": "best plan"},
        {
            "opening": OPENING,
            "selected": [PROPOSAL],
            "not_selected": [],
            "scenarios": [],
            "access_requests": [],
        },
        "river-tech-q1-2027-1",
    ),
    (["proposals", "show", "pr-1"], "GET", f"{C}/proposals/pr-1", None, PROPOSAL, "selected"),
    (["proposals", "mine"], "GET", f"{C}/proposals", None, [PROPOSAL], "Queue display"),
    (
        ["scenarios", "stage", "elder-meals", "building", "--reason", "team ready"],
        "POST",
        f"{C}/scenarios/elder-meals/stage",
        {"stage": "building", "reason": "team ready"},
        STAGED_SCENARIO,
        "building",
    ),
    (
        ["scenarios", "stages", "elder-meals"],
        "GET",
        f"{C}/scenarios/elder-meals/stages",
        None,
        [STAGE],
        "team ready",
    ),
]


@pytest.mark.parametrize(
    ("args", "method", "path", "body", "answer", "shown"), VERBS, ids=[" ".join(v[0]) for v in VERBS]
)
def test_each_programme_verb_sends_its_request_and_prints_a_table(
    platform: Platform,
    args: list[str],
    method: str,
    path: str,
    body: Any,
    answer: Any,
    shown: str,
) -> None:
    platform.answer = answer
    result = cli(*args)
    assert result.exit_code == 0, result.output
    sent = platform.requests[0]
    assert (sent.method, sent.url.raw_path.decode()) == (method, path)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert platform.body == body
    assert shown in result.output


# --- citybase evaluation --------------------------------------------------------------------------

OBJECTIVE = {
    "id": "obj_0123456789ab",
    "scenario_id": "leak-watch",
    "title": "Median repair time",
    "kind": "outcome",
    "datasets": [],
    "target": 48.0,
    "kpi": {"name": "median repair time", "unit": "hours", "direction": "at-most"},
    "period_start": "2027-01-01T00:00:00Z",
    "period_end": "2027-04-01T00:00:00Z",
    "status": "active",
    "version": 1,
    "set_by": "leak-watch",
    "set_at": "2026-12-07T10:00:00Z",
    "withdrawn_at": None,
    "withdrawn_reason": None,
}
OUTCOME = {
    "id": "out_0123456789ab",
    "scenario_id": "leak-watch",
    "objective_id": "obj_0123456789ab",
    "period_start": "2027-01-01T00:00:00Z",
    "period_end": "2027-02-01T00:00:00Z",
    "value": 41.5,
    "grant_ids": ["grt_1"],
    "dataset_ids": ["water.meter-readings"],
    "note": "",
    "corrects": None,
    "superseded_by": None,
    "reported_by": "leak-watch",
    "reported_at": "2027-02-02T10:00:00Z",
}
VERDICT = {
    "id": "ver_0123456789ab",
    "scenario_id": "leak-watch",
    "period_start": "2027-01-01T00:00:00Z",
    "period_end": "2027-04-01T00:00:00Z",
    "result": "meets",
    "reasons": [{"objective_id": "obj_0123456789ab", "result": "met", "reason": "41.5 h"}],
    "report": {"checkpoint": None, "digest": "abc"},
    "evaluator_id": "city-evaluator",
    "recorded_at": "2027-04-02T10:00:00Z",
}
Q1 = ["--period-start", "2027-01-01T00:00:00Z", "--period-end", "2027-04-01T00:00:00Z"]
EVALUATION_VERBS: list[tuple[list[str], str, str, Any, Any, str]] = [
    (
        [
            "evaluation",
            "objectives",
            "set",
            "leak-watch",
            "--title",
            "Median repair time",
            "--kind",
            "outcome",
            "--target",
            "48",
            "--kpi",
            "median repair time",
            "--unit",
            "hours",
            "--direction",
            "at-most",
            *Q1,
        ],
        "POST",
        f"{C}/scenarios/leak-watch/objectives",
        {
            "title": "Median repair time",
            "kind": "outcome",
            "datasets": [],
            "target": 48.0,
            "kpi": {"name": "median repair time", "unit": "hours", "direction": "at-most"},
            "period_start": "2027-01-01T00:00:00Z",
            "period_end": "2027-04-01T00:00:00Z",
        },
        OBJECTIVE,
        "obj_0123456789ab",
    ),
    (
        ["evaluation", "objectives", "list", "leak-watch"],
        "GET",
        f"{C}/scenarios/leak-watch/objectives",
        None,
        {"items": [OBJECTIVE]},
        "Median repair time",
    ),
    (
        ["evaluation", "objectives", "withdraw", "obj_0123456789ab", "--reason", "replaced"],
        "POST",
        f"{C}/objectives/obj_0123456789ab/withdraw",
        {"reason": "replaced"},
        {**OBJECTIVE, "status": "withdrawn"},
        "withdrawn",
    ),
    (
        [
            "evaluation",
            "outcomes",
            "report",
            "leak-watch",
            "--objective",
            "obj_0123456789ab",
            "--value",
            "41.5",
            "--grant",
            "grt_1",
            "--dataset",
            "water.meter-readings",
            "--period-start",
            "2027-01-01T00:00:00Z",
            "--period-end",
            "2027-02-01T00:00:00Z",
        ],
        "POST",
        f"{C}/scenarios/leak-watch/outcomes",
        {
            "objective_id": "obj_0123456789ab",
            "period_start": "2027-01-01T00:00:00Z",
            "period_end": "2027-02-01T00:00:00Z",
            "value": 41.5,
            "grant_ids": ["grt_1"],
            "dataset_ids": ["water.meter-readings"],
            "note": "",
            "corrects": None,
        },
        OUTCOME,
        "41.5",
    ),
    (
        ["evaluation", "outcomes", "list", "leak-watch"],
        "GET",
        f"{C}/scenarios/leak-watch/outcomes",
        None,
        {"items": [OUTCOME]},
        "out_0123456789ab",
    ),
    (
        [
            "evaluation",
            "verdict",
            "leak-watch",
            "--result",
            "meets",
            *Q1,
            "--reason",
            "obj_0123456789ab=met:41.5 h",
            "--digest",
            "abc",
        ],
        "POST",
        f"{C}/scenarios/leak-watch/verdicts",
        {
            "period_start": "2027-01-01T00:00:00Z",
            "period_end": "2027-04-01T00:00:00Z",
            "result": "meets",
            "reasons": [{"objective_id": "obj_0123456789ab", "result": "met", "reason": "41.5 h"}],
            "report": {"checkpoint": None, "digest": "abc"},
        },
        VERDICT,
        "city-evaluator",
    ),
]


@pytest.mark.parametrize(
    ("args", "method", "path", "body", "answer", "shown"),
    EVALUATION_VERBS,
    ids=[" ".join(v[0][:3]) for v in EVALUATION_VERBS],
)
def test_each_evaluation_verb_sends_its_request_and_prints_a_table(
    platform: Platform, args: list[str], method: str, path: str, body: Any, answer: Any, shown: str
) -> None:
    platform.answer = answer
    result = cli(*args)
    assert result.exit_code == 0, result.output
    sent = platform.requests[0]
    assert (sent.method, sent.url.raw_path.decode()) == (method, path)
    assert platform.body == body
    assert shown in result.output
    assert "idempotency-key" not in sent.headers


def test_an_outcome_report_sends_its_idempotency_key(platform: Platform) -> None:
    platform.answer = OUTCOME
    result = cli(
        "evaluation",
        "outcomes",
        "report",
        "leak-watch",
        "--objective",
        "obj_0123456789ab",
        "--value",
        "41.5",
        "--period-start",
        "2027-01-01T00:00:00Z",
        "--period-end",
        "2027-02-01T00:00:00Z",
        "--idempotency-key",
        "jan-2027",
    )
    assert result.exit_code == 0, result.output
    assert platform.requests[0].headers["idempotency-key"] == "jan-2027"


def test_a_verdict_names_the_checkpoint_and_digest_of_the_report_file(
    platform: Platform, tmp_path: Any
) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"checkpoint": {"seq": 42, "hash": "a" * 64, "at": "x"}, "digest": "d1"}))
    platform.answer = VERDICT
    result = cli(
        "evaluation",
        "verdict",
        "leak-watch",
        "--result",
        "meets",
        *Q1,
        "--reason",
        "obj_0123456789ab=met:41.5 h",
        "--report",
        str(report),
    )
    assert result.exit_code == 0, result.output
    assert platform.body["report"] == {"checkpoint": {"seq": 42, "hash": "a" * 64}, "digest": "d1"}
    bad = cli("evaluation", "verdict", "leak-watch", "--result", "meets", *Q1, "--reason", "no-result")
    assert bad.exit_code == 2


@pytest.mark.parametrize(("ok", "code"), [(True, 0), (False, 1)])
def test_verify_posts_the_saved_report_and_exits_1_when_it_does_not_hold(
    platform: Platform, tmp_path: Any, ok: bool, code: int
) -> None:
    report = tmp_path / "report.json"
    saved = {"scenario": {"id": "leak-watch"}, "checkpoint": {"seq": 42, "hash": "a" * 64}, "objectives": []}
    report.write_text(json.dumps(saved))
    mismatches = [] if ok else [{"path": "/objectives/0/actual", "report": 200, "trail": 20}]
    platform.answer = {
        "ok": ok,
        "checkpoint": {"seq": 42, "hash": "a" * 64},
        "chain": {"ok": True, "mode": "full", "from_seq": 0, "entries_checked": 42},
        "mismatches": mismatches,
        "checked": ["/objectives/0/actual"],
        "not_checked": [],
    }
    result = cli("evaluation", "verify", str(report))
    assert result.exit_code == code, result.output
    sent = platform.requests[0]
    assert (sent.method, sent.url.raw_path.decode()) == ("POST", f"{C}/evaluations/verify")
    assert platform.body == saved
    assert ("/objectives/0/actual" in result.output) is not ok
