"""Limits on a request's head: too many or too large headers are a 431 before anything reads them.

uvicorn's default HTTP parser (httptools) accepts a header of any size and any number of them, so
a 1 MiB Authorization header reached key lookup and 10,000 headers reached every dependency.
:class:`HeaderLimits` answers them at the door with 431 problem+json, without echoing a value.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import i18n
from services.common.i18n import N_
from services.common.problems import FieldError, Problem, scope_problem

MAX_HEADER_BYTES = 32 * 1024
"""All header names and values together; a key is under 100 bytes, a Last-Event-ID under 8 KiB."""
MAX_HEADERS = 128


class HeadersTooLarge(Problem):
    slug, title, status = "headers-too-large", "Request header fields too large", 431


class HeaderLimits:
    """ASGI middleware: more than MAX_HEADERS headers or MAX_HEADER_BYTES of them is a 431."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int = MAX_HEADER_BYTES, max_count: int = MAX_HEADERS
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        size = 0
        largest = b""
        largest_size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if len(value) > largest_size:
                largest, largest_size = name, len(value)
        if len(headers) <= self.max_count and size <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        if len(headers) > self.max_count:
            detail = i18n.Sentence(
                N_("%(count)s headers; at most %(limit)s are read"), count=len(headers), limit=self.max_count
            )
            errors = None
        else:
            detail = i18n.Sentence(
                N_("%(size)s bytes of headers; at most %(limit)s are read"), size=size, limit=self.max_bytes
            )
            name = largest.decode("latin-1")[:100]
            errors = [
                FieldError(
                    path=f"/headers/{name}",
                    rule="maxLength",
                    message=i18n.Sentence(N_("%(size)s bytes"), size=largest_size),
                )
            ]
        response = scope_problem(HeadersTooLarge(detail, errors=errors), scope)
        await response(scope, _disconnected, send)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
