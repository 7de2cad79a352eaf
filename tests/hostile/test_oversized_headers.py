"""Oversized, numerous and malformed headers over real HTTP (uvicorn on 127.0.0.1): a head over
the platform's limits is a 431 problem+json (services.common.limits), a malformed one the HTTP
parser's 400, a large but allowed forged key a 401; never a 5xx or a dropped server, and the next
ordinary request is still answered."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.catalog.app import create_app as create_catalog
from tests.factories import embedded_settings
from tests.support.http import serve


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory: Path = tmp_path_factory.mktemp("oversized-headers")
    with serve(create_catalog(embedded_settings(directory))) as url:
        yield url


def _raw(base_url: str, head: bytes) -> tuple[int, bytes]:
    """Send a hand-built request head; the status code the server answers (0 if it only closes)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(head)  # a server that stops reading still says why
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if not answer.startswith(b"HTTP/1.1 "):
        return 0, answer
    return int(answer.split(b" ", 2)[1]), answer


CASES = {  # name -> (header lines, the status expected)
    "a 64 KiB Authorization header": (b"Authorization: Bearer " + b"k" * (64 * 1024) + b"\r\n", 431),
    "a 1 MiB header": (b"X-Big: " + b"x" * (1 << 20) + b"\r\n", 431),
    "10000 headers": (b"".join(b"X-H-%d: v\r\n" % i for i in range(10_000)), 431),
    "200 small headers": (b"".join(b"X-H-%d: v\r\n" % i for i in range(200)), 431),
    "a 16 KiB Authorization header": (b"Authorization: Bearer " + b"k" * (16 * 1024) + b"\r\n", 401),
    "a header with a NUL": (b"Authorization: Bearer cb_x\x00y\r\n", 400),
    "a header folded over lines": (b"Authorization: Bearer\r\n cb_folded\r\n", 400),
    "a header without a name": (b": Bearer cb_x\r\n", 400),
}


@pytest.mark.parametrize("name", list(CASES))
def test_oversized_and_malformed_headers_are_a_4xx_and_the_server_stays_up(base_url: str, name: str) -> None:
    lines, expected = CASES[name]
    started = time.perf_counter()
    status, answer = _raw(
        base_url, b"GET /v1/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lines + b"Connection: close\r\n\r\n"
    )
    elapsed = time.perf_counter() - started
    assert status == expected, f"{name}: {answer[:300]!r}"
    if expected in (401, 431):
        assert b"application/problem+json" in answer, f"{name}: {answer[:300]!r}"
    assert b"Bearer kkkk" not in answer and b"cb_" not in answer, f"{name}: the header is echoed"
    assert elapsed < 5.0, f"{name} took {elapsed:.1f} s"
    assert httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200
