"""A readable record of the HTTP exchanges of a story test, for people (and closing notes).

With ``CITYBASE_HTTP_TRANSCRIPT=FILE`` set, the test drivers append each request (method, path,
whose key: never the key itself) and the answer (status and the start of the body) to FILE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

TRANSCRIPT = os.environ.get("CITYBASE_HTTP_TRANSCRIPT")
BODY_CHARS = 600


def record(response: httpx.Response, who: str, **kwargs: Any) -> httpx.Response:
    """Append ``response`` and its request to the transcript file, if one is asked for."""
    if TRANSCRIPT:
        request = response.request
        sent = kwargs.get("json")
        lines = [
            f"$ {request.method} {request.url.path}{'?' + request.url.query.decode() if request.url.query else ''}  ({who})"
        ]
        if sent is not None:
            lines.append(f"  {str(sent)[:BODY_CHARS]}")
        lines.append(f"  -> {response.status_code} {response.text[:BODY_CHARS]}")
        with Path(TRANSCRIPT).open("a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n\n")
    return response
