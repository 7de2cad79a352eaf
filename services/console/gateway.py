"""The console's only way to the platform: the services' public HTTP APIs, with the caller's key.

Every call carries the API key of the person logged in, so each service applies its own
authorization rule (docs/authorization.md) and the console can show nothing the key may not see.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from services.common import i18n
from services.console.exceptions import ApiError

SERVICES = ("catalog", "ingest", "feeds", "quality")


def api_path(template: str, **ids: str) -> str:
    """``template`` with each ``{name}`` replaced by its id as one encoded path segment.

    An id comes from the console's own URL, where ``%23`` is a ``#`` and ``%2F`` a ``/``: put
    back raw, it would end the path (``#``, ``?``) or add segments (``/``, ``..``) and call
    another operation than the one meant. Every reserved character is percent-encoded, and a
    segment of only dots too, which a client would otherwise resolve as "this" or "the parent".
    """
    return template.format(**{name: _segment(str(value)) for name, value in ids.items()})


def _segment(value: str) -> str:
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if set(encoded) == {"."} else encoded


class PlatformApi:
    """Calls ``/<service>/<path>`` under the platform root as the principal of ``key``, or with no
    key at all (``None``: what the platform publishes to anyone, such as the opportunity lists)."""

    def __init__(
        self, client: httpx.AsyncClient, key: str | None, *, forwarded_for: str | None = None
    ) -> None:
        """``key`` None reads as a visitor without a key (the public catalog), on behalf of the
        visitor's address ``forwarded_for``: the catalog counts its rate limit per that address
        when the console's own address is one its server trusts to forward (uvicorn's
        ``--forwarded-allow-ips``, loopback by default)."""
        self._client = client
        self._headers = {"Accept": "application/json"}
        if key is not None:
            self._headers["Authorization"] = f"Bearer {key}"
        if forwarded_for is not None:
            self._headers["X-Forwarded-For"] = forwarded_for

    async def _call(
        self,
        method: str,
        service: str,
        path: str,
        content_type: str | None = None,
        extra_headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}")
        try:
            # The services answer refusals in the reader's language (problem+json ``title`` and
            # ``detail`` follow Accept-Language), so a refusal shown on a form reads as the page does.
            headers = {**self._headers, "Accept-Language": i18n.tag()}
            if content_type is not None:
                headers["Content-Type"] = content_type
            headers.update(extra_headers or {})
            response = await self._client.request(method, f"/{service}{path}", headers=headers, **kwargs)
        except httpx.HTTPError as error:
            raise ApiError(
                service,
                502,
                {
                    "title": i18n._("Service unavailable"),
                    "detail": i18n._("%(service)s did not answer: %(error)s")
                    % {"service": service, "error": error},
                },
            ) from error
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason_phrase, "detail": response.text[:500]}
            if not isinstance(problem, dict):
                problem = {"title": response.reason_phrase, "detail": str(problem)[:500]}
            raise ApiError(service, response.status_code, problem)
        return response

    async def get(self, service: str, path: str, **params: Any) -> Any:
        query = {name: value for name, value in params.items() if value not in (None, "")}
        return (await self._call("GET", service, path, params=query)).json()

    async def text(self, service: str, path: str) -> str:
        return (await self._call("GET", service, path)).text

    async def document(self, service: str, path: str, **params: Any) -> tuple[bytes, str]:
        """A document a service renders (a report as CSV or HTML): its bytes and media type."""
        query = {name: value for name, value in params.items() if value not in (None, "")}
        response = await self._call("GET", service, path, params=query, extra_headers={"Accept": "*/*"})
        return response.content, response.headers.get("content-type", "application/octet-stream")

    async def post(
        self, service: str, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> Any:
        """``headers``: what the operation reads besides the body, such as an ``Idempotency-Key``."""
        return (await self._call("POST", service, path, extra_headers=headers, json=body)).json()

    async def post_document(self, service: str, path: str, document: bytes, media_type: str) -> Any:
        """A document sent as itself (an ODCS contract as YAML or JSON), not wrapped in a JSON body."""
        response = await self._call("POST", service, path, content=document, content_type=media_type)
        return response.json()

    async def patch(self, service: str, path: str, body: dict[str, Any]) -> Any:
        return (await self._call("PATCH", service, path, json=body)).json()

    async def delete(self, service: str, path: str) -> Any | None:
        """The deleted resource as the service answers it, or ``None`` for a 204."""
        response = await self._call("DELETE", service, path)
        return response.json() if response.content else None

    async def optional(self, service: str, path: str, **params: Any) -> Any | None:
        """A section of a page that may be missing (no score yet, not visible to this role):
        ``None`` on 403 and 404, any other failure still raised."""
        try:
            return await self.get(service, path, **params)
        except ApiError as error:
            if error.status in (403, 404):
                return None
            raise
