"""A Python client of a feeds subscription: :class:`Subscriber` reads it over long-poll and
acknowledges what the caller has processed (see :mod:`citybase.client`)."""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote

import httpx

from citybase.answers import MAX_RETRY_AFTER_S, describe, problem_document, retry_after_s


@dataclass(frozen=True, slots=True)
class Delivery:
    """One record delivered by feeds, as the subscription's grant lets the scenario see it."""

    id: str
    """Its CloudEvents id: the same record delivered again has the same id."""
    dataset: str
    partition: int
    offset: int
    time: str | None
    data: dict[str, Any]


class SubscribeError(Exception):
    """Feeds refused to deliver (a 4xx other than 429), or kept failing after the last retry.

    ``problem`` is the RFC 9457 document; ``reason`` says why a grant stopped delivery
    (``revoked``, ``suspended``, ``expired``, ``no_grant``, ``paused``...).
    """

    def __init__(
        self, message: str, *, status: int | None = None, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem: dict[str, Any] = problem or {}

    @property
    def reason(self) -> str | None:
        reason = self.problem.get("reason")
        return str(reason) if reason is not None else None


SUBSCRIBER_RETRYABLE = frozenset({429, 502, 503, 504})


class Subscriber:
    """Reads one feeds subscription over long-poll, acknowledging what the caller has processed.

    Iterating yields :class:`Delivery` records. A batch is acknowledged (its cursor committed) when
    the caller asks for the record after its last one, so a crash while processing delivers the
    batch again: at-least-once. An acknowledgement that does not get through (feeds restarting) is
    not waited for: the batch comes again. Records delivered again are dropped by their event id
    (the last ``remember`` ids are kept). 429 and 503 answers and lost connections are retried with
    exponential backoff (at least ``Retry-After``); any other refusal, such as a revoked grant,
    raises :class:`SubscribeError`. ``cursor`` is the last acknowledged cursor: keep it, and pass
    it back (``cursor=``) to resume exactly there in another process.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        subscription_id: str,
        *,
        cursor: str | None = None,
        max_records: int = 500,
        wait_s: float = 20.0,
        max_retries: int | None = 10,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        remember: int = 100_000,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.subscription_id = subscription_id
        self.cursor = cursor
        self._unacked: str | None = cursor
        self.max_records = max_records
        self.wait_s = wait_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0
        """Records dropped because their id had been delivered before."""
        self._sleep = sleep
        self._jitter = random.Random()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "citybase-subscriber/0.1"},
            timeout=httpx.Timeout(wait_s + 30.0),
            transport=transport,
        )

    @classmethod
    def create(
        cls,
        base_url: str,
        api_key: str,
        dataset_id: str,
        *,
        start: str | dict[str, Any] = "latest",
        transport: httpx.BaseTransport | None = None,
        **options: Any,
    ) -> Subscriber:
        """Subscribe the key's scenario to ``dataset_id`` and read the new subscription."""
        with httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, transport=transport
        ) as http:
            response = http.post(
                "/v1/subscriptions", json={"dataset": dataset_id, "start": start}, timeout=60
            )
        if response.status_code != 201:
            problem = problem_document(response)
            raise SubscribeError(
                describe(response.status_code, problem), status=response.status_code, problem=problem
            )
        return cls(base_url, api_key, response.json()["id"], transport=transport, **options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Delivery]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Delivery]]:
        """Batches of new records (never empty), each acknowledged when the next is asked for."""
        while True:
            if self._unacked is not None:
                try:
                    self._ack(self._unacked, retry=False)
                except SubscribeError as error:
                    if error.status is not None and error.status not in SUBSCRIBER_RETRYABLE | {409}:
                        raise
                    # A lost acknowledgement (feeds restarting, or a replay since): not worth
                    # waiting for; the batch comes again and its records are dropped as duplicates.
                    self._unacked = None
            body = self._request(
                "GET",
                f"/v1/subscriptions/{quote(self.subscription_id, safe='')}/records",
                params={"max": self.max_records, "wait": self.wait_s},
            )
            records = [Delivery(**record) for record in body["records"]]
            self._unacked = body["cursor"]
            fresh = [record for record in records if self._first_time(record.id)]
            if fresh:
                yield fresh

    def ack(self, cursor: str) -> None:
        """Acknowledge every record delivered before ``cursor``."""
        self._ack(cursor, retry=True)

    def _ack(self, cursor: str, *, retry: bool) -> None:
        self._request(
            "POST",
            f"/v1/subscriptions/{quote(self.subscription_id, safe='')}/ack",
            retry=retry,
            json={"cursor": cursor},
        )
        self.cursor = cursor
        if self._unacked == cursor:
            self._unacked = None

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            self.duplicates += 1
            return False
        self._seen[event_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return True

    def _request(self, method: str, url: str, *, retry: bool = True, **kwargs: Any) -> dict[str, Any]:
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                response = self._http.request(method, url, **kwargs)
            except httpx.TransportError as error:
                failure = SubscribeError(f"no answer from {self.base_url}: {error!r}")
            else:
                if response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                problem = problem_document(response)
                failure = SubscribeError(
                    describe(response.status_code, problem), status=response.status_code, problem=problem
                )
                if response.status_code not in SUBSCRIBER_RETRYABLE:
                    raise failure
                wait = retry_after_s(response.headers.get("Retry-After"))
            if not retry or (self.max_retries is not None and attempt > self.max_retries):
                raise failure
            backoff = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * (
                0.5 + self._jitter.random() / 2
            )
            self._sleep(max(min(wait, MAX_RETRY_AFTER_S), backoff) if wait is not None else backoff)
