"""``citybase up`` (what ``make run`` calls) serves the four services from one process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.factories import evolve_contract, example_contract


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_citybase_up_serves_health_readiness_and_metrics(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "CITYBASE_DATA_DIR": str(tmp_path / "data"), "CITYBASE_PORT": str(port)}
    env.pop("CITYBASE_BUS_URL", None)
    env.pop("CITYBASE_DATABASE_URL", None)
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "citybase.cli", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "up.log").read_text()
            try:
                if httpx.get(f"{base}/catalog/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "citybase up did not become ready in 60 s"
            time.sleep(0.3)
        for service in ("catalog", "ingest", "feeds", "quality"):
            assert httpx.get(f"{base}/{service}/healthz", timeout=5).status_code == 200
            # Each service becomes ready on its own (its read model replays platform.catalog).
            while httpx.get(f"{base}/{service}/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, f"{service} did not become ready in 60 s"
                time.sleep(0.3)
            metrics = httpx.get(f"{base}/{service}/metrics", timeout=5)
            assert metrics.status_code == 200
            assert "# TYPE citybase_http_requests_total counter" in metrics.text
            assert httpx.get(f"{base}/{service}/docs", timeout=5).status_code == 200
        assert (tmp_path / "data" / "citybase.db").exists()
        assert (tmp_path / "data" / "bus.db").exists()

        # The first screen a new user reads: one line per service when it is ready, no library chatter.
        def server_log() -> str:
            return (tmp_path / "up.log").read_text()

        while not all(f"{s} ready in" in server_log() for s in ("catalog", "ingest", "feeds", "quality")):
            assert time.monotonic() < deadline, server_log()
            time.sleep(0.3)
        for noise in ("alembic", "Skipping registering", "Deprecat", "relay failed", "Traceback"):
            assert noise not in server_log(), server_log()

        # the admin key is printed once, the examples are loaded, and the CLI registers through the API
        admin_key = re.search(r"cbk_[0-9a-f]{8}_[A-Za-z0-9_-]+", (tmp_path / "up.log").read_text()).group(0)
        auth = {"Authorization": f"Bearer {admin_key}"}
        datasets = httpx.get(f"{base}/catalog/v1/datasets", headers=auth, timeout=5).json()["items"]
        assert len(datasets) == 5
        evolved = tmp_path / "1.2.0.yaml"
        evolved.write_text(evolve_contract(example_contract("transport.bus-arrivals", "1.1.0"), "1.2.0"))
        registered = subprocess.run(
            [
                sys.executable,
                "-m",
                "citybase.cli",
                "contracts",
                "register",
                str(evolved),
                "--url",
                f"{base}/catalog",
                "--key",
                admin_key,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert registered.returncode == 0, registered.stdout + registered.stderr
        dataset = httpx.get(f"{base}/catalog/v1/datasets/transport.bus-arrivals", headers=auth, timeout=5)
        assert dataset.json()["current_version"] == "1.2.0"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            assert process.wait(timeout=20) == 0, "citybase up did not stop cleanly on SIGINT"
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
