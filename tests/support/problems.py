"""What a refusal must look like to a client: RFC 9457 problem+json of one stable type."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"


def expect_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """The problem document of ``response``, which must have ``status`` and the type ``slug``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/" + slug), body
    return body
