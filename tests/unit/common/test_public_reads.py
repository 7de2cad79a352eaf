"""The rate limit of reads without a key: a token bucket per client address."""

from __future__ import annotations

import pytest

from services.common.problems import TooManyRequests
from services.common.public_reads import PublicRateLimit, PublicReadSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_gets_its_burst_then_waits_for_the_refill_with_retry_after() -> None:
    clock = Clock()
    limit = PublicRateLimit(PublicReadSettings(requests_per_minute=30, burst=3), clock=clock)
    for _ in range(3):
        limit.take("203.0.113.7")
    with pytest.raises(TooManyRequests) as refused:
        limit.take("203.0.113.7")
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "2"}  # one request every 2 s
    limit.take("198.51.100.1")  # another address has its own bucket
    clock.now += 2.0
    limit.take("203.0.113.7")
    with pytest.raises(TooManyRequests):
        limit.take("203.0.113.7")
    clock.now += 60.0  # a long pause refills up to the burst, not beyond
    for _ in range(3):
        limit.take("203.0.113.7")
    with pytest.raises(TooManyRequests):
        limit.take("203.0.113.7")


def test_the_least_recently_seen_addresses_are_forgotten_past_the_bound() -> None:
    clock = Clock()
    limit = PublicRateLimit(PublicReadSettings(requests_per_minute=1, burst=1), clock=clock, max_clients=2)
    limit.take("a")
    limit.take("b")
    limit.take("c")  # forgets "a": a scan from many addresses cannot fill the memory
    limit.take("a")
    with pytest.raises(TooManyRequests):
        limit.take("c")
