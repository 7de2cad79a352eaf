"""What can go wrong between the console and the services it calls."""

from __future__ import annotations

from typing import Any


class LoginRequired(Exception):
    """No session cookie: the page needs an API key first."""


class NotForYourRole(Exception):
    """The console does not offer this page to the caller's kind of principal."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CrossSiteRequest(Exception):
    """A form sent from a page that is not the console's own (its Origin or Referer names another site)."""


class ApiError(Exception):
    """A service refused a call (4xx) or failed (5xx, no answer): carries its problem document."""

    def __init__(self, service: str, status: int, problem: dict[str, Any]) -> None:
        self.service = service
        self.status = status
        self.problem = problem
        super().__init__(f"{service} answered {status}: {self.detail}")

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or "Error")

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or "no detail")

    @property
    def slug(self) -> str:
        return str(self.problem.get("type") or "").rsplit("/", 1)[-1]

    @property
    def field_errors(self) -> list[dict[str, Any]]:
        errors = self.problem.get("errors")
        return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
