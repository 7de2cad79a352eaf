"""Prometheus metrics owned by each app (never the process-global registry).

Each service builds a :class:`ServiceMetrics` in ``create_app``; its registry is what that
service's ``/metrics`` exposes. Names follow the Prometheus conventions: ``citybase_`` prefix, base
units, ``_total`` counters, and bounded labels only (route templates, never raw paths or ids).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The registry of one service and the HTTP metrics every service has."""

    def __init__(self, service: str) -> None:
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

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(request: Request) -> str:
    """The matched route's path template, so that ids never become label values."""
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


def install_http_metrics(app: FastAPI, metrics: ServiceMetrics) -> None:
    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = route_template(request)
            metrics.http_requests.labels(metrics.service, request.method, route, str(status)).inc()
            metrics.http_duration.labels(metrics.service, request.method, route).observe(
                time.perf_counter() - started
            )
