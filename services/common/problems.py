"""RFC 9457 problem details, the one error format of every citybase service.

Domain errors subclass :class:`Problem` (each service lists its own in ``exceptions.py``) and carry
a stable ``type`` URI, an HTTP status and a human ``detail``. One set of handlers, installed by the
app factory, renders them, request validation errors (with the exact field path) and anything
unexpected as ``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, PrivateAttr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from services.common import i18n
from services.common.i18n import N_, Sentence

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://citybase.dev/problems/"

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One invalid value: where it is, which rule it broke, and what to do.

    ``message`` is a plain string (a library's own words, kept as they are) or a
    :class:`~services.common.i18n.Sentence`, shown in the language of the answer; the field holds
    its English (logs, dead letters)."""

    path: str = Field(description="JSON Pointer (RFC 6901) to the invalid value, e.g. /body/0/delay_s")
    rule: str = Field(description="The rule broken, e.g. required, type, maximum, enum")
    message: str
    _sentence: i18n.Sentence | None = PrivateAttr(default=None)

    def __init__(self, *, path: str, rule: str, message: str) -> None:
        super().__init__(path=path, rule=rule, message=str(message))
        if isinstance(message, i18n.Sentence):
            self._sentence = message

    def shown(self) -> dict[str, str]:
        """The error as an answer shows it: its message in the current locale."""
        return {"path": self.path, "rule": self.rule, "message": i18n.render(self._sentence or self.message)}


class ProblemDetail(BaseModel):
    """RFC 9457 problem details, as every error body of every service."""

    type: str = Field(examples=[TYPE_BASE + "dataset-not-found"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class Problem(Exception):
    """A domain error that maps to one problem type. Subclass it; set the class attributes."""

    slug: str = "error"
    title: str = "Error"
    status: int = 400
    headers: dict[str, str] | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        english = str(detail) if detail else None
        super().__init__(english or self.title)
        self.detail = english
        """The detail in English, as logs and the audit trail keep it."""
        self.sentence = detail if isinstance(detail, i18n.Sentence) else None
        """The detail to render in the reader's language, when it was written as a Sentence."""
        self.errors = list(errors) if errors else None
        self.extensions = extensions
        if headers:
            self.headers = {**(self.headers or {}), **headers}

    @property
    def type(self) -> str:
        return TYPE_BASE + self.slug

    title_args: dict[str, str] | None = None
    """Values of the placeholders in ``title`` (``%(service)s``), filled after translation."""

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document in the current language (:mod:`services.common.i18n`): the title
        and a :class:`~services.common.i18n.Sentence` detail translated, the ``type`` URI the same
        in every language."""
        title = i18n.gettext(self.title)
        if self.title_args:
            title = title % self.title_args
        body: dict[str, Any] = {"type": self.type, "title": title, "status": self.status}
        if self.detail:
            body["detail"] = i18n.render(self.sentence or self.detail)
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [error.shown() for error in self.errors]
        body.update(self.extensions)
        return body


class BadRequest(Problem):
    slug, title, status = "bad-request", "Bad request", 400


class MalformedBody(BadRequest):
    """The body cannot be parsed at all (not JSON, truncated, bad gzip); says where (line, column,
    offset) when it can. Every service answers it for a request body that is not JSON."""

    slug, title = "malformed-body", "The request body cannot be parsed"

    def __init__(
        self,
        detail: str,
        *,
        line: int | None = None,
        column: int | None = None,
        offset: int | None = None,
        **extensions: Any,
    ) -> None:
        where: dict[str, Any] = {
            name: value
            for name, value in (("line", line), ("column", column), ("offset", offset))
            if value is not None
        }
        super().__init__(detail, **where, **extensions)
        self.line, self.column, self.offset = line, column, offset

    @classmethod
    def at(cls, text: str, offset: int, reason: str) -> MalformedBody:
        """The fault at character ``offset`` of ``text``, located by line and column (1-based)."""
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        # The same sentence as ingest's NDJSON lines, so that one translation serves both.
        detail = Sentence(N_("line %(line)s column %(colno)s: %(msg)s"), line=line, colno=column, msg=reason)
        return cls(detail, line=line, column=column, offset=offset)


class InvalidRequest(Problem):
    slug, title, status = "validation-error", "The request is not valid", 422


class InternalError(Problem):
    slug, title, status = "internal-error", "Internal error", 500


class NotFound(Problem):
    slug, title, status = "not-found", "Not found", 404


class Unauthenticated(Problem):
    slug, title, status = "unauthenticated", "Authentication required", 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(Problem):
    slug, title, status = "forbidden", "Not allowed", 403


class Conflict(Problem):
    slug, title, status = "conflict", "Conflict", 409


class TooManyRequests(Problem):
    slug, title, status = "too-many-requests", "Too many requests", 429

    def __init__(self, detail: str | None = None, *, retry_after_s: int = 1, **extensions: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)}, **extensions)


class ServiceUnavailable(Problem):
    slug, title, status = "service-unavailable", "Service unavailable", 503

    def __init__(self, detail: str | None = None, *, retry_after_s: int = 5, **extensions: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)}, **extensions)


class CatalogNotReady(ServiceUnavailable):
    """A service's read model has not replayed platform.catalog yet: keys, datasets and grants may
    look unknown, so the service answers 503 rather than a misleading 401, 403 or 404."""

    slug, title = "catalog-not-ready", "%(service)s is still reading the catalog"

    def __init__(self, service: str, *, retry_after_s: int = 1) -> None:
        super().__init__(
            Sentence(N_("%(service)s is still reading platform.catalog; retry shortly"), service=service),
            retry_after_s=retry_after_s,
        )
        self.title_args = {"service": service.capitalize()}


def problem_response(
    problem: Problem, instance: str | None = None, *, accept_language: str | None = None
) -> JSONResponse:
    """The problem as ``application/problem+json``, its title in the language the client asks for
    (``Accept-Language``: Chinese or English)."""
    with i18n.use(i18n.negotiate(accept_language=accept_language)):
        body = problem.body(instance)
        language = i18n.tag()
    headers = {**(problem.headers or {}), "Content-Language": language}
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def scope_problem(problem: Problem, scope: Scope) -> JSONResponse:
    """:func:`problem_response` for the raw ASGI request ``scope`` a middleware refuses: its path as
    the instance, its ``Accept-Language``."""
    language = next((value for name, value in scope.get("headers", ()) if name == b"accept-language"), b"")
    path = scope.get("root_path", "") + scope["path"]
    return problem_response(problem, path, accept_language=language.decode("latin-1"))


def request_problem(problem: Problem, request: Request) -> JSONResponse:
    """:func:`problem_response` for ``request``: its path as the instance, its language."""
    return problem_response(problem, request.url.path, accept_language=request.headers.get("accept-language"))


def json_pointer(location: Sequence[str | int]) -> str:
    """RFC 6901 pointer for a pydantic/jsonschema error location."""
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in location)


def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return request_problem(exc, request)


def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    malformed = _malformed_json(exc)
    if malformed is not None:
        return request_problem(malformed, request)
    errors = [
        FieldError(
            path=json_pointer(error.get("loc", ())),
            rule=str(error.get("type", "invalid")),
            message=str(error.get("msg", "invalid value")),
        )
        for error in exc.errors()
    ]
    return request_problem(
        InvalidRequest(
            Sentence(N_("%(count)s invalid value(s) in the request"), count=len(errors)), errors=errors
        ),
        request,
    )


def _malformed_json(exc: RequestValidationError) -> MalformedBody | None:
    """FastAPI reports a body that does not decode as JSON as a validation error (``json_invalid``);
    it is a malformed request (400), not invalid values (422), and says where the decoder stopped."""
    for error in exc.errors():
        if error.get("type") != "json_invalid":
            continue
        reason = str((error.get("ctx") or {}).get("error", "the body is not valid JSON"))
        location = error.get("loc", ())
        offset = location[-1] if location and isinstance(location[-1], int) else None
        body = exc.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        if offset is None or not isinstance(body, str):
            return MalformedBody(Sentence(N_("the body is not valid JSON: %(reason)s"), reason=reason))
        return MalformedBody.at(body, offset, reason)
    return None


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this request's path (RFC 9110 ``Allow``)."""
    routes = getattr(request.app, "routes", None) or []
    allowed = []
    for method in HTTP_METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


_HTTP_SLUGS = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


_ROUTING_TITLES = {405: N_("Method Not Allowed")}
"""Starlette's reason phrase of a status no problem type names, as a title (translated as any)."""


def _routing_detail(request: Request, exc: StarletteHTTPException) -> str | None:
    """The detail of an HTTP error: a path no route takes or a method it does not answer said in
    the reader's language; any other detail as the raiser wrote it."""
    detail = str(exc.detail) if exc.detail else None
    if detail != HTTPStatus(exc.status_code).phrase:
        return detail
    if exc.status_code == 404:
        return Sentence(N_("no resource answers at %(path)s"), path=request.url.path)
    if exc.status_code == 405:
        return Sentence(
            N_("%(path)s does not answer %(method)s"), path=request.url.path, method=request.method
        )
    return detail


def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    known = _HTTP_SLUGS.get(exc.status_code)
    detail = _routing_detail(request, exc)
    if known is not None:
        problem: Problem = known(detail)
    else:
        problem = Problem(detail)
        problem.status = exc.status_code
        problem.slug = f"http-{exc.status_code}"
        problem.title = _ROUTING_TITLES.get(exc.status_code) or str(exc.detail) or "HTTP error"
    if exc.headers:
        problem.headers = {**(problem.headers or {}), **exc.headers}
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; the path may have more.
        allowed = allowed_methods(request)
        if allowed:
            problem.headers = {**(problem.headers or {}), "Allow": ", ".join(allowed)}
    return request_problem(problem, request)


def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return request_problem(
        InternalError(Sentence(N_("The server failed to handle this request; it has been logged."))), request
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetail, "content": {PROBLEM_JSON: {}}, "description": description}
    for status, description in {
        "4XX": "Client error (RFC 9457 problem details)",
        "5XX": "Server error (RFC 9457 problem details)",
    }.items()
}
"""OpenAPI responses every route documents."""
