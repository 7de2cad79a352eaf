"""Reads without a key: who is reading (the client's address) and how often it may.

Open data and the public catalog records are read by anyone, so the only thing that tells one
reader from another is the address a request comes from. Each address gets a token bucket:
``burst`` requests at once, refilled at ``per_minute``; past that, a 429 problem+json with the
seconds to wait in ``Retry-After``. A caller with a key is counted by its grant's quota instead.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request

from services.common.i18n import N_, Sentence
from services.common.problems import TooManyRequests


class PublicReadSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBASE_PUBLIC_", env_file=None, extra="ignore")

    requests_per_minute: float = Field(
        default=120.0, gt=0, description="Requests without a key one client address may make per minute."
    )
    burst: int = Field(default=60, ge=1, description="Requests without a key one address may make at once.")


@dataclass
class _Bucket:
    tokens: float
    at: float


class PublicRateLimit:
    """A token bucket per client address; thread-safe. The least recently seen addresses are
    forgotten past ``max_clients``, so a scan from many addresses cannot fill the memory."""

    def __init__(
        self,
        settings: PublicReadSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        settings = settings or PublicReadSettings()
        self._rate = settings.requests_per_minute / 60.0
        self._burst = float(settings.burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, address: str) -> None:
        """Count one request of ``address``; raises TooManyRequests when its bucket is empty."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(address, None) or _Bucket(self._burst, now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
            bucket.at = now
            self._buckets[address] = bucket
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait_s = math.ceil((1.0 - bucket.tokens) / self._rate)
        raise TooManyRequests(
            Sentence(
                N_(
                    "too many requests without an API key from %(address)s; retry in %(wait_s)s s or send a key"
                ),
                address=address,
                wait_s=wait_s,
            ),
            retry_after_s=wait_s,
        )


def client_address(request: Request) -> str:
    """The address a request came from (behind a proxy, the one the server was told to trust)."""
    return request.client.host if request.client else "unknown"
