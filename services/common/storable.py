"""Text a database can store: a NUL character is refused at the door, with where it was.

PostgreSQL's text columns cannot hold U+0000 (SQLite's can), so a NUL in a path, a query
parameter or a JSON body reached the database as a ``DataError`` and a 500. :class:`NulGuard`
answers it first with a 400 problem+json whose field path names the parameter or the JSON
Pointer of the string; :func:`install_storable_handlers` turns whatever still gets through
(a value the database refuses) into a 422, never a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.i18n import N_, Sentence
from services.common.problems import FieldError, Problem, json_pointer, request_problem, scope_problem

log = logging.getLogger(__name__)

SCANNED_BODY_BYTES = 1 << 20
"""JSON bodies up to this size are scanned for NUL; larger ones are left to the route's own limits."""

NUL = "\x00"


class NulCharacter(Problem):
    slug, title, status = "nul-character", "A NUL character is not allowed", 400


class UnstorableValue(Problem):
    slug, title, status = "unstorable-value", "A value the database cannot store", 422


def _nul_paths(value: Any, location: list[str | int]) -> Iterator[list[str | int]]:
    if isinstance(value, str):
        if NUL in value:
            yield location
    elif isinstance(value, dict):
        for name, item in value.items():
            if NUL in name:
                yield [*location, name]
            yield from _nul_paths(item, [*location, name])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, [*location, index])


def _errors(paths: Iterator[list[str | int]]) -> list[FieldError]:
    return [
        FieldError(
            path=json_pointer(path), rule="nul", message=Sentence(N_("contains a NUL character (U+0000)"))
        )
        for path in paths
    ]


def _query_paths(query_string: bytes) -> Iterator[list[str | int]]:
    text = query_string.decode("latin-1")
    if "%00" not in text and NUL not in text:
        return
    for name, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"):
        if NUL in name or NUL in value:
            yield ["query", name.replace(NUL, "\\u0000")]


class NulGuard:
    """ASGI middleware: a NUL in the path, the query or a JSON body (up to 1 MiB) is a 400."""

    def __init__(self, app: ASGIApp, *, scan_json_bodies: bool = True) -> None:
        self.app = app
        self.scan_json_bodies = scan_json_bodies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = []
        if NUL in scope["path"]:
            errors.append(
                FieldError(
                    path="/path", rule="nul", message=Sentence(N_("contains a NUL character (U+0000)"))
                )
            )
        errors += _errors(_query_paths(scope.get("query_string", b"")))
        if errors:
            await self._refuse(scope, send, errors)
            return
        if not self.scan_json_bodies or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False) or size > SCANNED_BODY_BYTES:
                break
        complete = buffered[-1]["type"] == "http.request" and not buffered[-1].get("more_body", False)
        if complete and size <= SCANNED_BODY_BYTES:
            body = b"".join(message.get("body", b"") for message in buffered)
            if b"\\u0000" in body or b"\x00" in body:
                try:
                    document = json.loads(body)
                except ValueError:
                    document = None  # the route says what is wrong with it
                errors = _errors(_nul_paths(document, ["body"]))
                if errors:
                    await self._refuse(scope, send, errors)
                    return

        async def replay() -> Message:
            if buffered:
                return buffered.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, errors: list[FieldError]) -> None:
        problem = NulCharacter(
            Sentence(N_("text the platform stores cannot contain a NUL character (U+0000)")), errors=errors
        )
        response = scope_problem(problem, {**scope, "path": scope["path"].replace(NUL, "")})
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _is_json(scope: Scope) -> bool:
    if scope["method"] not in ("POST", "PUT", "PATCH"):
        return False
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def install_storable_handlers(app: FastAPI) -> None:
    """A value the database refuses (out of range, not encodable) is a 422, never a 500."""

    def on_data_error(request: Request, exc: Exception) -> JSONResponse:
        log.warning("unstorable value on %s %s: %s", request.method, request.url.path, exc)
        return request_problem(
            UnstorableValue(
                Sentence(N_("a value in the request is out of the range or the alphabet the platform stores"))
            ),
            request,
        )

    app.add_exception_handler(DataError, on_data_error)
