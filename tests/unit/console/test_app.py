"""The console against a stand-in platform (httpx.MockTransport): how it answers when a service
fails, refuses, or is gone. A page is never a 500."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console.app import create_app
from services.console.deps import COOKIE

ME = {"id": "city-ops", "kind": "operator", "name": "City Ops", "department_id": None}


def console(handler: httpx.MockTransport) -> TestClient:
    client = TestClient(create_app(transport=handler))
    client.cookies.set(COOKIE, "cbk_00000000_key")
    return client


def platform(datasets: httpx.Response | Exception) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer cbk_00000000_key"
        if request.url.path == "/catalog/v1/me":
            return httpx.Response(200, json=ME)
        if isinstance(datasets, Exception):
            raise datasets
        return datasets

    return httpx.MockTransport(answer)


@pytest.mark.parametrize(
    ("answer", "status", "shown"),
    [
        (httpx.Response(500, json={"title": "Internal error", "detail": "boom"}), 502, "boom"),
        (httpx.Response(503, text="<html>down</html>"), 502, "down"),
        (httpx.ConnectError("refused"), 502, "catalog did not answer"),
        (httpx.Response(404, json={"title": "Not found", "detail": "no dataset x.y"}), 404, "no dataset x.y"),
        (
            httpx.Response(403, json={"title": "Forbidden", "detail": "not-your-scenario"}),
            403,
            "Not for your role",
        ),
    ],
)
def test_a_failing_or_refusing_service_is_a_page_that_says_so(
    answer: httpx.Response | Exception, status: int, shown: str
) -> None:
    with console(platform(answer)) as client:
        response = client.get("/datasets/x.y")
    assert response.status_code == status
    assert shown in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_a_key_revoked_since_login_sends_back_to_the_login_form() -> None:
    def revoked(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"title": "Authentication required", "detail": "unknown key"})

    with console(httpx.MockTransport(revoked)) as client:
        response = client.get("/overview", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Foverview"
    assert f'{COOKIE}=""' in response.headers["set-cookie"]


def test_the_console_needs_to_know_where_the_platform_is() -> None:
    with pytest.raises(ValueError, match="CITYBASE_CONSOLE_API_URL"):
        create_app()
