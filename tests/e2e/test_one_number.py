"""One number, one source: for the same dataset at the same moment, its score, its consumer lag,
its subscriber count and its utilization score read the same in the quality API, the catalog's
dataset record (with a key and without one), the console's dataset page and the Prometheus
metrics, and feeds' API says the same of the lag and of which subscriptions deliver.

The platform runs in this process as ``citybase up`` runs it. Two scenarios subscribe to the same
dataset; one has read part of what it was delivered (so that lag as "not acknowledged" and lag as
"not delivered" differ), the other's grant is revoked (so that it no longer counts as a
subscriber), and the second quality window moves the score by less than the announcement
threshold (so that a catalog fed only by threshold announcements would lag behind)."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from citybase.demo import FaultRates
from services.common.worker import wait_until
from tests.support.platform import SHORT_QUALITY_WINDOWS, Platform, in_process

DATASET = "market.inspections"
FIELDS = ["inspection_id", "district", "result"]
FAST_GAUGES = {
    **SHORT_QUALITY_WINDOWS,
    "CITYBASE_FEEDS_LAG_INTERVAL_S": "0.3",
    "CITYBASE_QUALITY_UTILIZATION_REFRESH_S": "0.3",
}


@pytest.fixture
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("one-number"), key_name="one", environment=FAST_GAUGES
    ) as running:
        yield running


def _metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def _granted(platform: Platform, scenario_id: str, approver: str) -> str:
    platform.scenario(scenario_id)
    asked = platform.request_access(scenario_id, dataset_id=DATASET, fields=FIELDS)
    decided = platform.ok(
        "POST",
        f"/catalog/v1/access-requests/{asked['id']}/approve",
        approver,
        json={"reason": "street-level results"},
    )
    return str(decided["grant_id"])


def _subscribe(platform: Platform, scenario_id: str) -> str:
    key = platform.keys[scenario_id]

    def created() -> dict[str, Any] | None:
        response = platform.call(
            "POST", "/feeds/v1/subscriptions", key, json={"dataset": DATASET, "start": "earliest"}
        )
        return response.json() if response.status_code == 201 else None

    found: list[dict[str, Any]] = []
    assert wait_until(lambda: bool(found.append(c) or c) if (c := created()) else False, 10), (
        "no grant in feeds"
    )
    return str(found[-1]["id"])


def _pull(platform: Platform, scenario_id: str, subscription_id: str, count: int, *, ack: bool) -> int:
    """Read ``count`` records (acknowledging them when ``ack``); returns how many came."""
    key = platform.keys[scenario_id]
    got, cursor = 0, None
    deadline = time.monotonic() + 20
    while got < count and time.monotonic() < deadline:
        batch = platform.ok(
            "GET",
            f"/feeds/v1/subscriptions/{subscription_id}/records",
            key,
            params={"max": count - got, "wait": 1},
        )
        got += len(batch["records"])
        cursor = batch["cursor"] if batch["records"] else cursor
        if ack and batch["records"]:
            platform.ok(
                "POST", f"/feeds/v1/subscriptions/{subscription_id}/ack", key, json={"cursor": cursor}
            )
    return got


def _console_page(platform: Platform) -> str:
    client = platform.client
    assert isinstance(client, TestClient)
    client.cookies.clear()
    logged_in = client.post(
        "/console/login", data={"key": platform.admin_key, "next": "/console/"}, follow_redirects=False
    )
    assert logged_in.status_code == 303, logged_in.text
    page = client.get(f"/console/datasets/{DATASET}", headers={"Accept-Language": "en"})
    assert page.status_code == 200, page.text
    return html.unescape(page.text)


def _stat(page: str, label: str) -> str | None:
    found = re.search(rf'<span class="muted">{re.escape(label)}</span><b[^>]*>([^<]*)</b>', page)
    return found.group(1).strip() if found else None


def readings(platform: Platform, subscriptions: list[str]) -> dict[str, dict[str, Any]]:
    """Score, lag and subscriber count of the dataset in every place that shows them."""
    quality = platform.ok("GET", f"/quality/v1/datasets/{DATASET}/quality")
    ranked = platform.ok("GET", "/quality/v1/quality/rankings", params={"by": "dataset"})["items"]
    record = platform.ok("GET", f"/catalog/v1/datasets/{DATASET}")
    public = platform.client.get(f"/catalog/v1/datasets/{DATASET}").json()  # without a key
    usage = platform.ok("GET", f"/quality/v1/utilization/datasets/{DATASET}")
    listed = platform.ok("GET", "/feeds/v1/subscriptions")["items"]
    feeds_lags = {s: platform.ok("GET", f"/feeds/v1/subscriptions/{s}")["lag"] for s in subscriptions}
    page = _console_page(platform)
    quality_metrics = platform.client.get("/quality/metrics").text
    feeds_metrics = platform.client.get("/feeds/metrics").text
    console_lags = {
        s: int(m.group(1))
        for s in subscriptions
        if (m := re.search(rf"<code>{s}</code>.*?<td>(\d+)</td></tr>", page, re.S))
    }
    overall = _stat(page, "overall")
    subscribers = _stat(page, "active subscribers")
    return {
        "score": {
            "quality API": quality["scores"]["overall"],
            "rankings": next(e["overall"] for e in ranked if e["dataset_id"] == DATASET),
            "catalog record": (record.get("quality") or {}).get("overall"),
            "console": float(overall) if overall else None,
            "metric": _metric(
                quality_metrics, "citybase_dataset_quality_score", dataset=DATASET, dimension="overall"
            ),
        },
        "lag": {
            "feeds API": sum(feeds_lags.values()),
            "quality API": sum(s["lag_records"] or 0 for s in usage["subscriptions"]),
            "console": sum(console_lags.values()),
            "metric": _metric(feeds_metrics, "citybase_feeds_lag_records", dataset=DATASET),
        },
        "lag per subscription": {
            "feeds API": feeds_lags,
            "quality API": {s["subscription_id"]: s["lag_records"] for s in usage["subscriptions"]},
            "console": console_lags,
        },
        "subscribers": {
            "feeds API": sum(1 for s in listed if s["dataset"] == DATASET and s["delivering"]),
            "quality API": usage["active_subscribers"],
            "catalog record": (record.get("utilization") or {}).get("active_subscribers"),
            "console": int(subscribers) if subscribers else None,
            "metric": _metric(quality_metrics, "citybase_dataset_active_subscribers", dataset=DATASET),
        },
        "utilization": {
            "quality API": usage["score"],
            "catalog record": (record.get("utilization") or {}).get("score"),
            "public record": (public.get("utilization") or {}).get("score"),
            "metric": _metric(quality_metrics, "citybase_dataset_utilization_score", dataset=DATASET),
        },
    }


def _same_form(value: Any, figure: str) -> Any:
    """A reading in a form that compares: numbers as floats (a score to one decimal, as the
    console shows it), per-subscription readings as sorted pairs."""
    if isinstance(value, dict):
        return tuple(sorted((key, _same_form(item, figure)) for key, item in value.items()))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(float(value), 1) if figure in ("score", "utilization") else float(value)
    return value


def disagreements(found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The figures that are not the same everywhere, or missing somewhere."""
    out = {}
    for figure, places in found.items():
        values = {_same_form(value, figure) for value in places.values()}
        if len(values) != 1 or None in values:
            out[figure] = places
    return out


def test_score_lag_and_subscribers_are_the_same_everywhere(platform: Platform) -> None:
    approver = platform.principal("market-approver", "approver", "market-supervision")
    reading, revoked = "ai-community", "one-stop-visit"
    _granted(platform, reading, approver)
    revoked_grant = _granted(platform, revoked, approver)
    first, second = _subscribe(platform, reading), _subscribe(platform, revoked)

    platform.demo_traffic(DATASET, 100, seed=1)
    assert wait_until(
        lambda: (
            (platform.ok("GET", "/catalog/v1/datasets/" + DATASET).get("quality") or {}).get("overall")
            is not None
        ),
        30,
    ), "the first score never reached the catalog"
    # A second window a little worse: the score moves by less than the announcement threshold.
    platform.demo_traffic(DATASET, 100, faults=FaultRates(null=0.04), seed=2)

    # One scenario reads 150 and acknowledges 100 of them; the other reads 20, then loses its grant.
    assert _pull(platform, reading, first, 100, ack=True) == 100
    assert _pull(platform, reading, first, 50, ack=False) == 50
    assert _pull(platform, revoked, second, 20, ack=True) == 20
    platform.ok("POST", f"/catalog/v1/grants/{revoked_grant}/revoke", approver, json={"reason": "ended"})

    last: dict[str, dict[str, Any]] = {}

    def agreed() -> bool:
        nonlocal last
        last = readings(platform, [first, second])
        return not disagreements(last)

    # Each place learns through the bus (scores, metering, grants) within a second or two; once
    # settled, every place must show the same figures.
    settled = wait_until(agreed, 30, 0.5)
    assert settled, f"the figures disagree: {disagreements(last)}"
    lags = last["lag per subscription"]["feeds API"]
    # Not delivered is not the measure: acknowledged is (100 of the first's 150, 20 of the second's).
    assert lags[second] - lags[first] == 80 and lags[first] > 0
    assert last["subscribers"]["quality API"] == 1  # the revoked scenario's no longer counts
    listed = {s["id"]: s for s in platform.ok("GET", "/feeds/v1/subscriptions")["items"]}
    assert (listed[second]["status"], listed[second]["delivering"]) == ("revoked", False)
