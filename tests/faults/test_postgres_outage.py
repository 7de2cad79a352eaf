"""PostgreSQL stops (immediate shutdown, as a crash) while the catalog serves, then comes back.

During the outage every request that needs the database is answered 503 problem+json with
Retry-After within the engine's connect timeout, never a 500 and never a hang; once the server
is back the catalog answers again without a restart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.faults.infra import PrivatePostgres
from tests.faults.services import Catalog, running_catalog

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]

OUTAGE_S = 6.0
CLIENTS = 3
CLIENT_TIMEOUT_S = 30.0
BOUND_S = 10.0
"""A request during the outage is answered within this: the connect timeout (5 s) and some slack."""


def _hammer(
    catalog: Catalog,
    paths: list[str],
    stop: threading.Event,
    seen: list[tuple[str, float, httpx.Response | str]],
) -> None:
    with httpx.Client(base_url=catalog.url, timeout=CLIENT_TIMEOUT_S) as http:
        headers = {"Authorization": f"Bearer {catalog.admin_key}"}
        number = 0
        while not stop.is_set():
            path = paths[number % len(paths)]
            number += 1
            started = time.monotonic()
            try:
                outcome: httpx.Response | str = http.get(path, headers=headers)
            except httpx.TransportError as error:
                outcome = type(error).__name__
            seen.append((path, time.monotonic() - started, outcome))
            time.sleep(0.05)


def test_the_catalog_answers_503_while_postgresql_is_down_and_recovers(
    private_postgres: PrivatePostgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database_url = private_postgres.create_database("catalog_outage")
    with running_catalog(
        tmp_path, database_url=database_url, bus_url=f"embedded://{tmp_path / 'bus.db'}"
    ) as catalog:
        dataset = catalog.dataset("outage")
        paths = ["/v1/datasets", f"/v1/datasets/{dataset.id}", "/v1/departments", "/readyz"]
        for path in paths:
            assert catalog.call("GET", path).status_code == 200, path

        seen: list[tuple[str, float, httpx.Response | str]] = []
        stop = threading.Event()
        clients = [
            threading.Thread(target=_hammer, args=(catalog, paths, stop, seen), daemon=True)
            for _ in range(CLIENTS)
        ]
        private_postgres.stop("immediate")
        stopped_at = time.monotonic()
        for client in clients:
            client.start()
        time.sleep(OUTAGE_S)
        during = len(seen)
        private_postgres.start()
        restarted_at = time.monotonic()
        recovered_at = None
        deadline = restarted_at + 30
        while time.monotonic() < deadline:
            if all(catalog.call("GET", path).status_code == 200 for path in paths):
                recovered_at = time.monotonic()
                break
            time.sleep(0.2)
        stop.set()
        for client in clients:
            client.join(CLIENT_TIMEOUT_S + 5)
            assert not client.is_alive(), "a request hangs past its client timeout"

    outage = seen[:during]
    statuses = Counter(o if isinstance(o, str) else o.status_code for _, _, o in outage)
    longest = max(duration for _, duration, _ in outage)
    figures = (
        f"PostgreSQL down {restarted_at - stopped_at:.1f}s: {len(outage)} requests during the outage "
        f"{dict(statuses)}, max request {longest:.2f}s; catalog answered 200 again "
        + (f"{recovered_at - restarted_at:.1f}s after the restart" if recovered_at else "never (30 s)")
    )
    with capsys.disabled():
        print("\n" + figures)

    assert recovered_at is not None, figures
    assert outage, figures
    assert longest < BOUND_S, figures
    for path, _, outcome in outage:
        assert not isinstance(outcome, str), f"{path}: {outcome} during the outage — {figures}"
        assert outcome.status_code == 503, f"{path}: {outcome.status_code} {outcome.text} — {figures}"
        assert outcome.headers["content-type"] == "application/problem+json", (path, outcome.headers)
        assert int(outcome.headers["retry-after"]) > 0, (path, outcome.headers)
        assert outcome.json()["status"] == 503
