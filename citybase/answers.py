"""Reading a citybase service's answer in the clients: ``Retry-After``, the RFC 9457 problem of a
refusal, and a one-line description of it."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

MAX_RETRY_AFTER_S = 60.0


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), None if unusable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def problem_document(response: httpx.Response) -> dict[str, Any]:
    """The RFC 9457 problem of a refusal; a minimal one when the body is not JSON."""
    try:
        body = response.json()
    except ValueError:
        return {"title": response.reason_phrase, "detail": response.text[:500]}
    return body if isinstance(body, dict) else {"title": response.reason_phrase}


def describe(status: int, problem: dict[str, Any]) -> str:
    title = problem.get("title") or httpx.codes.get_reason_phrase(status)
    detail = problem.get("detail")
    return f"{status} {title}" + (f": {detail}" if detail and detail != title else "")
