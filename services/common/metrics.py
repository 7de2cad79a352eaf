"""Prometheus metrics owned by each app (never the process-global registry).

Each service builds a :class:`ServiceMetrics` in ``create_app``; its registry is what that
service's ``/metrics`` exposes. Names follow the Prometheus conventions: ``citybase_`` prefix, base
units, ``_total`` counters, and bounded labels only (route templates, never raw paths or ids).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_Family = TypeVar("_Family")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each of ``values`` (a histogram without labels, or a labelled
    child), with the same result and a fraction of the cost.

    ``observe`` takes a lock per value and searches the buckets in Python; a delivery path that
    observes every record it sends spends more on that than on the record. Here the bucket of
    each value is found by :func:`bisect.bisect_left` (the first bound >= the value, as ``observe``
    picks it) and each touched bucket and the sum are added to once. This reads
    prometheus_client's histogram fields (stable since 0.4); without them it observes one by one.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(buckets) != len(bounds):
        for value in values:
            histogram.observe(value)
        return
    if not values:
        return
    total.inc(sum(values))
    # NaN (not equal to itself) goes in no bucket, as with observe.
    for index, count in Tally(bisect_left(bounds, value) for value in values if value == value).items():
        buckets[index].inc(count)


class ServiceMetrics:
    """The registry of one service and the HTTP metrics every service has."""

    def __init__(self, service: str) -> None:
        # prometheus_client adds a "_created" gauge to every counter and histogram in the text
        # format: twice the series for a timestamp nobody queries.
        disable_created_metrics()
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "citybase_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "citybase_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.up = Gauge(
            "citybase_service_up", "1 while the service process runs.", ["service"], registry=self.registry
        )
        self.up.labels(service).set(1)
        self._families: dict[Callable[[ServiceMetrics], object], object] = {}

    def family(self, build: Callable[[ServiceMetrics], _Family]) -> _Family:
        """A service's own metrics (``IngestMetrics``, ...) in this registry, built by ``build(self)``
        once: an app that starts again on the same registry finds them rather than registering them
        twice."""
        found = self._families.get(build)
        if found is None:
            found = self._families[build] = build(self)
        return cast(_Family, found)

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
"""The ``route`` label of a request no route matched: a made-up path never becomes a label value."""


def route_template(scope: Scope) -> str:
    """The matched route's path template, so that ids never become label values.

    FastAPI keeps the template with every prefix of the routers it was included through in its
    effective route context; ``scope["route"]`` holds the route as its own router declared it.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    for candidate in (context, scope.get("route")):
        path = getattr(candidate, "path_format", None) or getattr(candidate, "path", None)
        if isinstance(path, str) and path:
            return path
    return UNMATCHED_ROUTE


def method_label(method: str) -> str:
    """The request method, or ``other``: a client can send any token as a method."""
    return method if method in HTTP_METHODS else "other"


class HttpMetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status (pure ASGI).

    The duration runs until the last byte of the response; for a Server-Sent Events stream, whose
    length is the subscriber's choice, until its headers, so that streams do not swamp the
    latency histogram. A request that fails with an exception counts as a 500.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        elapsed: float | None = None

        async def send_measured(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if _is_event_stream(message):
                    elapsed = time.perf_counter() - started
            elif (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and elapsed is None
            ):
                elapsed = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            method = method_label(str(scope.get("method", "")))
            route = route_template(scope)
            service = self.metrics.service
            self.metrics.http_requests.labels(service, method, route, str(status)).inc()
            self.metrics.http_duration.labels(service, method, route).observe(
                time.perf_counter() - started if elapsed is None else elapsed
            )


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).startswith(b"text/event-stream")
    return False


def install_http_metrics(app: FastAPI, metrics: ServiceMetrics) -> None:
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
