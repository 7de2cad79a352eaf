"""Every error of every service is RFC 9457 problem+json, with field paths for invalid input."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from citybase.platform import SERVICE_FACTORIES
from services.common.i18n import N_
from services.common.i18n import render as render_text
from services.common.problems import (
    CatalogNotReady,
    NotFound,
    install_problem_handlers,
    json_pointer,
)
from tests.factories import embedded_settings

SERVICES = sorted(SERVICE_FACTORIES)


class Item(BaseModel):
    name: str
    count: int = Field(ge=0)


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/items")
    def create(items: list[Item]) -> int:
        return len(items)

    @app.get("/items/{item_id}")
    def get(item_id: str) -> None:
        raise NotFound(f"no item {item_id}")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    return app


def test_validation_errors_name_the_field_path() -> None:
    client = TestClient(_app())
    response = client.post("/items", json=[{"name": "a", "count": 1}, {"name": "b", "count": -1}])
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/validation-error")
    assert body["errors"] == [
        {
            "path": "/body/1/count",
            "rule": "greater_than_equal",
            "message": "Input should be greater than or equal to 0",
        }
    ]


def test_domain_errors_keep_their_type_and_detail() -> None:
    response = TestClient(_app()).get("/items/x1")
    assert response.status_code == 404
    assert response.json() == {
        "type": "https://citybase.dev/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": "no item x1",
        "instance": "/items/x1",
    }


def test_unknown_routes_are_problems_too() -> None:
    response = TestClient(_app()).get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_unexpected_errors_do_not_leak_internals() -> None:
    response = TestClient(_app(), raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert "secret" not in response.text
    assert response.json()["type"].endswith("/internal-error")


def test_json_pointer_escapes() -> None:
    assert json_pointer(["body", 0, "a/b~c"]) == "/body/0/a~1b~0c"


@pytest.mark.parametrize("service", ["ingest", "feeds", "quality"])
def test_catalog_not_ready_names_the_service_that_is_replaying(service: str) -> None:
    problem = CatalogNotReady(service)
    assert problem.status == 503
    assert problem.headers == {"Retry-After": "1"}
    assert problem.body() == {
        "type": "https://citybase.dev/problems/catalog-not-ready",
        "title": f"{service.capitalize()} is still reading the catalog",
        "status": 503,
        "detail": f"{service} is still reading platform.catalog; retry shortly",
    }


def _methods_by_path(app: FastAPI) -> dict[str, set[str]]:
    """Every method each path of the app answers, over all the routes on that path."""
    return {path: {method.upper() for method in item} for path, item in app.openapi()["paths"].items()}


def _concrete(path: str) -> str:
    return path.replace("{", "x").replace("}", "").replace(":path", "")


def test_a_405_allows_every_method_of_every_route_on_the_path() -> None:
    app = _app()

    @app.patch("/items/{item_id}")
    def patch(item_id: str) -> None:
        raise NotFound(f"no item {item_id}")

    response = TestClient(app).put("/items/a")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.headers["allow"].split(", ")) == {"GET", "PATCH"}


@pytest.mark.parametrize("service", SERVICES)
def test_a_405_of_any_service_lists_every_method_its_path_accepts(service: str, tmp_path: Path) -> None:
    app = SERVICE_FACTORIES[service](embedded_settings(tmp_path))
    client = TestClient(app)
    for path, methods in _methods_by_path(app).items():
        refused = next(
            method for method in ("PUT", "DELETE", "PATCH", "POST", "GET") if method not in methods
        )
        response = client.request(refused, _concrete(path))
        assert response.status_code == 405, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        allowed = set(response.headers["allow"].split(", "))
        # A URL may also match a wider route (a {dataset_id:path}) and then allows its methods too.
        assert methods <= allowed and refused not in allowed, (path, allowed)


@pytest.mark.parametrize("body", [b"not json", b'{"name": "a", "count"', b"[1, 2"])
def test_malformed_json_is_a_400_that_says_where(body: bytes) -> None:
    response = TestClient(_app()).post("/items", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/malformed-body")
    assert problem["line"] == 1 and problem["column"] >= 1 and problem["detail"].startswith("line 1 column")


def test_where_malformed_json_stops_reads_in_chinese_when_asked() -> None:
    response = TestClient(_app()).post(
        "/items", content=b"[1, 2", headers={"Content-Type": "application/json", "Accept-Language": "zh-CN"}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("第 1 行第 6 列：")


def _json_route(app: FastAPI) -> tuple[str, str]:
    """A method and path of the app that take a JSON body."""
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {})
            if "schema" in body.get("application/json", {}):
                return method.upper(), _concrete(path)
    raise AssertionError("no route with a JSON body")


# Ingest parses its record bodies itself, after authentication, and answers the same type
# (tests/integration/test_ingest_bad_input.py, "malformed JSON"); quality takes no request body.
@pytest.mark.parametrize("service", ["catalog", "feeds"])
def test_malformed_json_is_a_400_from_every_service(service: str, tmp_path: Path) -> None:
    app = SERVICE_FACTORIES[service](embedded_settings(tmp_path))
    client = TestClient(app)
    method, path = _json_route(app)
    for body in (b"{not json", b'{"name": "truncated'):
        response = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "https://citybase.dev/problems/malformed-body"


def test_a_sentence_detail_is_english_in_logs_and_the_readers_language_in_the_answer() -> None:
    from services.common.i18n import Sentence, use
    from services.common.problems import FieldError, InvalidRequest, problem_response

    problem = InvalidRequest(
        Sentence(N_("no dataset %(dataset_id)r"), dataset_id="water.meters"),
        errors=[
            FieldError(path="/body/scenario_id", rule="required", message=Sentence(N_("name the scenario")))
        ],
    )
    # what logs and the audit trail keep
    assert str(problem) == problem.detail == "no dataset 'water.meters'"
    assert problem.errors is not None and problem.errors[0].message == "name the scenario"
    chinese = problem_response(problem, "/x", accept_language="zh-CN,zh;q=0.9").body
    assert (
        b"\xe6\xb2\xa1\xe6\x9c\x89\xe6\x95\xb0\xe6\x8d\xae\xe9\x9b\x86 'water.meters'" in chinese
    )  # 没有数据集
    with use("zh_CN"):
        body = problem.body()
    assert body["detail"] == "没有数据集 'water.meters'"
    assert body["errors"] == [{"path": "/body/scenario_id", "rule": "required", "message": "请指明场景"}]
    assert body["type"] == "https://citybase.dev/problems/validation-error"
    with use("en"):
        assert problem.body()["detail"] == "no dataset 'water.meters'"


def test_a_plain_string_detail_and_message_stay_as_written_in_every_language() -> None:
    from services.common.i18n import use
    from services.common.problems import FieldError, InvalidRequest

    problem = InvalidRequest(
        "as the library said", errors=[FieldError(path="/a", rule="type", message="not int")]
    )
    with use("zh_CN"):
        body = problem.body()
    assert body["detail"] == "as the library said"
    assert body["errors"][0]["message"] == "not int"


def test_a_sentence_inside_a_sentence_speaks_the_same_language() -> None:
    from services.common.i18n import Sentence, use
    from services.common.policy import RowFilterError, parse_row_filter

    with pytest.raises(RowFilterError) as caught:
        parse_row_filter("district ==", ["district"])
    error = caught.value
    reason = Sentence(
        N_("%(message)s (at character %(position)s)"), message=error.sentence, position=error.position
    )
    assert str(reason) == "expected a field or a value, found the end of the filter (at character 11)"
    with use("zh_CN"):
        assert reason.render() == "此处应为字段或值，实际为 过滤条件结尾（第 11 个字符处）"


def test_a_path_no_route_takes_and_a_method_it_does_not_answer_are_said_in_the_readers_language() -> None:
    client = TestClient(_app())
    missing = client.get("/nowhere", headers={"Accept-Language": "zh-CN"}).json()
    assert (missing["title"], missing["detail"]) == ("未找到", "没有资源位于 /nowhere")
    assert client.get("/nowhere").json()["detail"] == "no resource answers at /nowhere"
    refused = client.put("/items/a", headers={"Accept-Language": "zh-CN"}).json()
    assert refused["type"] == "https://citybase.dev/problems/http-405"
    assert (refused["title"], refused["detail"]) == ("不允许使用该方法", "/items/a 不接受 PUT 请求")
    english = client.put("/items/a").json()
    assert (english["title"], english["detail"]) == ("Method Not Allowed", "/items/a does not answer PUT")


def test_a_value_error_raised_with_a_sentence_keeps_it_for_the_refusal() -> None:
    from services.common.i18n import reason_of, use
    from services.common.policy import FieldMask

    with pytest.raises(ValueError) as caught:
        FieldMask.from_value("blur")
    reason = reason_of(caught.value)
    assert (
        reason
        == str(caught.value)
        == "masking kind must be one of hash, redact, partial, generalize, not 'blur'"
    )
    with use("zh_CN"):
        assert render_text(reason) == "脱敏方式必须是 hash, redact, partial, generalize 之一，而不是 'blur'"
    assert reason_of(ValueError("plain words")) == "plain words"
