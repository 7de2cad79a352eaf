"""PostgreSQL stops (immediate shutdown, as a crash) while the catalog serves, then comes back.

During the outage every request that needs the database is answered 503 problem+json with
Retry-After within the engine's connect timeout, never a 500 and never a hang; once the server
is back the catalog answers again without a restart.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.infra import PrivatePostgres
from tests.support.processes import Catalog, running_catalog

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]

OUTAGE_S = 6.0
CLIENTS = 3
CLIENT_TIMEOUT_S = 30.0
BOUND_S = 10.0
"""A request during the outage is answered within this: the connect timeout (5 s) and some slack."""


@dataclass(frozen=True)
class Call:
    path: str
    started: float
    ended: float
    outcome: httpx.Response | str


def _hammer(catalog: Catalog, paths: list[str], stop: threading.Event, seen: list[Call]) -> None:
    """Reads of each path in turn, and every fifth call a write (a new department)."""
    with httpx.Client(base_url=catalog.url, timeout=CLIENT_TIMEOUT_S) as http:
        headers = {"Authorization": f"Bearer {catalog.admin_key}"}
        number = 0
        while not stop.is_set():
            number += 1
            started = time.monotonic()
            try:
                if number % 5 == 0:
                    path = "POST /v1/departments"
                    department = f"dept-{uuid.uuid4().hex[:10]}"
                    body = {"id": department, "name": department, "kind": "bureau", "domains": ["transport"]}
                    outcome: httpx.Response | str = http.post("/v1/departments", json=body, headers=headers)
                else:
                    path = paths[number % len(paths)]
                    outcome = http.get(path, headers=headers)
            except httpx.TransportError as error:
                outcome = type(error).__name__
            seen.append(Call(path, started, time.monotonic(), outcome))
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

        seen: list[Call] = []
        stop = threading.Event()
        clients = [
            threading.Thread(target=_hammer, args=(catalog, paths, stop, seen), daemon=True)
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        time.sleep(1.0)  # requests in flight when the server goes
        stopping_at = time.monotonic()
        private_postgres.stop("immediate")
        stopped_at = time.monotonic()
        time.sleep(OUTAGE_S)
        restarting_at = time.monotonic()
        private_postgres.start()
        restarted_at = time.monotonic()
        recovered_at = None
        while time.monotonic() < restarted_at + 30:
            if all(catalog.call("GET", path).status_code == 200 for path in paths):
                recovered_at = time.monotonic()
                break
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        for client in clients:
            client.join(CLIENT_TIMEOUT_S + 5)
            assert not client.is_alive(), "a request hangs past its client timeout"

    def status(call: Call) -> int | str:
        return call.outcome if isinstance(call.outcome, str) else call.outcome.status_code

    outage = [c for c in seen if c.started >= stopped_at and c.ended <= restarting_at]
    before = [c for c in seen if c.ended <= stopping_at]
    after = [c for c in seen if recovered_at is not None and c.started >= recovered_at]
    longest = max(c.ended - c.started for c in seen)
    figures = (
        f"PostgreSQL down {restarted_at - stopping_at:.1f}s: {len(outage)} requests during the outage "
        f"{dict(Counter(status(c) for c in outage))}, all {len(seen)} requests "
        f"{dict(Counter(status(c) for c in seen))}, max request {longest:.2f}s; catalog answered 200 "
        + (f"again {recovered_at - restarted_at:.1f}s after the restart" if recovered_at else "never (30 s)")
    )
    with capsys.disabled():
        print("\n" + figures)

    assert recovered_at is not None, figures
    assert before and outage and after, figures
    assert longest < BOUND_S, figures
    assert all(status(c) in (200, 201) for c in before + after), figures
    for call in seen:
        assert status(call) in (200, 201, 503), f"{call.path}: {status(call)} — {figures}"
    for call in outage:
        response = call.outcome
        assert isinstance(response, httpx.Response), f"{call.path}: {response} — {figures}"
        assert response.status_code == 503, f"{call.path}: {response.status_code} {response.text} — {figures}"
        assert response.headers["content-type"] == "application/problem+json", (call.path, response.headers)
        assert int(response.headers["retry-after"]) > 0, (call.path, response.headers)
        assert response.json()["status"] == 503
