"""Serving an app on a real socket of 127.0.0.1, for what the in-process TestClient cannot do
(Server-Sent Events, webhooks, a command line calling an API)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Literal

import uvicorn
from fastapi import FastAPI

from services.common.worker import wait_until as poll_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(app: FastAPI, *, lifespan: Literal["on", "off"] = "on", port: int = 0) -> Iterator[str]:
    """Serve ``app`` by uvicorn in a thread of this process; yields its base URL. ``lifespan="off"``
    serves an app whose lifespan already runs (under a TestClient, say)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        assert poll_until(lambda: server.started, 60), "uvicorn did not start in 60 s"
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    """The kernel's poll, at a pace that suits requests over HTTP."""
    return poll_until(condition, timeout_s, interval_s)
