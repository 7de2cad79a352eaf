"""Every service's /metrics follows the Prometheus conventions, checked by promtool and by name."""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from citybase.platform import SERVICE_FACTORIES
from services.common.metrics import HTTP_METHODS, UNMATCHED_ROUTE, ServiceMetrics, install_http_metrics
from tests.support.deploy import UNKNOWN_PATH, Scrape, parse_exposition

SERVICES = sorted(SERVICE_FACTORIES)
BASE_UNITS = ("seconds", "bytes", "ratio", "records", "batches", "requests", "events", "messages")
NOT_BASE_UNITS = re.compile(
    r"_(milliseconds|ms|microseconds|minutes|hours|days|kilobytes|megabytes|percent)(_|$)"
)


@pytest.mark.parametrize("service", SERVICES)
def test_promtool_finds_nothing_to_say_about_the_exposition(
    service: str, exposed_metrics: dict[str, Scrape], promtool: str
) -> None:
    scrape = exposed_metrics[service]
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=scrape.text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", checked.stdout + checked.stderr


def test_promtool_speaks_up_about_a_broken_exposition(promtool: str) -> None:
    broken = (
        "# HELP citybase_things Things.\n# TYPE citybase_things counter\ncitybase_things 1\n"
        "# HELP citybase_wait_ms Wait.\n# TYPE citybase_wait_ms gauge\ncitybase_wait_ms 3\n"
    )
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=broken, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode != 0
    assert '"_total" suffix' in checked.stdout + checked.stderr
    assert "abbreviated units" in checked.stdout + checked.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_names_carry_the_prefix_base_units_and_total(
    service: str, exposed_metrics: dict[str, Scrape]
) -> None:
    types = exposed_metrics[service].parsed.types
    assert types, "no metric families exposed"
    for name, kind in types.items():
        assert name.startswith("citybase_"), name
        assert not NOT_BASE_UNITS.search(name), f"{name}: use base units (seconds, bytes, ratio 0-1)"
        if kind == "counter":
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), f"{name} is a {kind}, not a counter"
        if "duration" in name or "latency" in name or "age" in name.split("_"):
            assert name.endswith("_seconds"), f"{name}: a time is in seconds"


@pytest.mark.parametrize("service", SERVICES)
def test_http_requests_are_counted_and_timed_by_route_template(
    service: str, exposed_metrics: dict[str, Scrape]
) -> None:
    scrape = exposed_metrics[service]
    assert scrape.parsed.types["citybase_http_requests_total"] == "counter"
    assert scrape.parsed.types["citybase_http_request_duration_seconds"] == "histogram"
    routes = scrape.parsed.label_values[("citybase_http_requests_total", "route")]
    assert {"/healthz", "/readyz", UNMATCHED_ROUTE} <= routes
    assert routes <= scrape.routes | {UNMATCHED_ROUTE}, "a route label is not one of the app's templates"
    assert UNKNOWN_PATH not in scrape.text and "no-such-route" not in scrape.text
    methods = scrape.parsed.label_values[("citybase_http_requests_total", "method")]
    assert "other" in methods, "a made-up method was counted under its own name"
    assert methods <= HTTP_METHODS | {"other"}
    statuses = scrape.parsed.label_values[("citybase_http_requests_total", "status")]
    assert {"200", "404", "405"} <= statuses
    assert all(re.fullmatch(r"[1-5][0-9][0-9]", status) for status in statuses)


def test_ids_from_urls_never_become_label_values(exposed_metrics: dict[str, Scrape]) -> None:
    ingest = exposed_metrics["ingest"]
    assert 'route="/v1/datasets/{dataset_id}/records"' in ingest.text
    assert 'route="/v1/datasets/transport.bus-arrivals/records"' not in ingest.text
    records = ingest.parsed.label_values[("citybase_ingest_records_total", "outcome")]
    assert records == {"accepted", "rejected"}, [
        line for line in ingest.text.splitlines() if "ingest_re" in line
    ]


def test_an_event_stream_is_timed_to_its_headers_and_a_crash_counts_as_500() -> None:
    metrics = ServiceMetrics("probe")
    app = FastAPI()
    install_http_metrics(app, metrics)

    async def events():  # type: ignore[no-untyped-def]
        for number in range(3):
            await asyncio.sleep(0.2)
            yield f"data: {number}\n\n"

    @app.get("/stream/{subscription_id}")
    async def stream(subscription_id: str) -> StreamingResponse:
        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/stream/s-1").text.count("data:") == 3
        assert client.get("/crash").status_code == 500
    parsed = parse_exposition(metrics.exposition().body.decode())
    assert parsed.label_values[("citybase_http_requests_total", "route")] == {
        "/stream/{subscription_id}",
        "/crash",
    }
    assert parsed.label_values[("citybase_http_requests_total", "status")] == {"200", "500"}
    text = metrics.exposition().body.decode()
    stream_sum = re.search(
        r'citybase_http_request_duration_seconds_sum\{method="GET",route="/stream/\{subscription_id\}",service="probe"\} (\S+)',
        text,
    )
    assert stream_sum is not None, text
    assert float(stream_sum.group(1)) < 0.2, "the stream's 0.6 s of events were counted as latency"
