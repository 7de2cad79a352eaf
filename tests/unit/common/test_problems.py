"""Every error of every service is RFC 9457 problem+json, with field paths for invalid input."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from services.common.problems import CatalogNotReady, NotFound, install_problem_handlers, json_pointer


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
