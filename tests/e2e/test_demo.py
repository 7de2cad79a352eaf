"""``citybase demo`` and ``citybase publish`` against a real ``citybase up`` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.platform import CLI, Platform, citybase_up


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A platform with the example datasets loaded, shared by this module's tests."""
    with citybase_up(tmp_path_factory.mktemp("demo")) as running:
        yield running


def run_cli(*args: str, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("CITYBASE_API_KEY", None)
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def test_demo_streams_records_with_the_chosen_share_of_faults(platform: Platform) -> None:
    before = platform.ingest_counts()
    result = run_cli(
        "demo",
        "--url",
        platform.base,
        "--key",
        platform.admin_key,
        "--rate",
        "200",
        "--duration",
        "5",
        "--null-rate",
        "0.1",
        "--seed",
        "1",
        "--json-summary",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["seed"] == 1 and summary["lost"] == 0
    assert summary["sent"] == summary["generated"] == 1000  # 200/s for 5 s, whatever the latency
    assert summary["accepted"] + summary["rejected"] == summary["sent"]
    assert 0.06 <= summary["rejected_share"] <= 0.14
    assert set(summary["datasets"]) == {
        "transport.bus-arrivals",
        "health.outpatient-visits",
        "market.inspections",
        "spatial.building-permits",
        "community.service-requests",
    }
    for dataset_id, stats in summary["datasets"].items():
        assert stats["sent"] == 200 and stats["accepted"] > 0, dataset_id
        assert set(stats["rules"]) <= {"required"} and stats["rejected"] == stats["faults"].get("null", 0)

    # ingest counted the same records
    after = platform.ingest_counts()
    for dataset_id, stats in summary["datasets"].items():
        for outcome in ("accepted", "rejected"):
            grown = after.get((dataset_id, outcome), 0) - before.get((dataset_id, outcome), 0)
            assert grown == stats[outcome], (dataset_id, outcome)


def test_publish_lists_the_rows_the_contract_rejected(platform: Platform, tmp_path: Path) -> None:
    good = (
        "6f1c2f7e-1d7b-4c1e-9c55-0d7d2f1a{n:04d},S0042,71,沪B-12345,2026-11-24T08:15:30+08:00,{delay},FULL\n"
    )
    rows = [good.format(n=n, delay=42) for n in range(1, 7)]
    rows[2] = good.format(n=3, delay=99999)  # line 4: beyond the contract's three hours
    rows[4] = rows[4].replace("FULL", "CROWDED")  # line 6: not an occupancy status
    path = tmp_path / "arrivals.csv"
    path.write_text("arrival_id,stop_id,route_id,vehicle_id,arrived_at,delay_s,occupancy\n" + "".join(rows))
    args = ["publish", str(path), "--dataset", "transport.bus-arrivals", "--url", f"{platform.base}/ingest"]
    result = run_cli(*args, "--key", platform.admin_key, "--batch-size", "4")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "6 records, 4 accepted, 2 rejected" in result.stdout
    listed = [
        line.split() for line in result.stdout.splitlines() if "/delay_s" in line or "/occupancy" in line
    ]
    assert [(cells[1], cells[3], cells[5]) for cells in listed] == [
        ("4", "/delay_s", "maximum"),
        ("6", "/occupancy", "enum"),
    ]

    path.write_text(
        "arrival_id,stop_id,route_id,vehicle_id,arrived_at\n"
        + "".join(r.rsplit(",", 2)[0] + "\n" for r in rows[:2])
    )
    assert run_cli(*args, "--key", platform.admin_key).returncode == 0
    assert run_cli(*args, "--key", "cbk_00000000_not-a-key").returncode == 2


def test_demo_registers_the_example_datasets_on_an_empty_catalog(tmp_path: Path) -> None:
    wanted = ["market.inspections", "community.service-requests"]
    with citybase_up(tmp_path, "--no-examples") as empty:
        result = run_cli(
            "demo",
            "--url",
            empty.base,
            "--key",
            empty.admin_key,
            "--rate",
            "40",
            "--duration",
            "1",
            "--datasets",
            ",".join(wanted),
            "--json-summary",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "4 example contract versions registered, 0 already there" in result.stdout
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert sorted(summary["datasets"]) == sorted(wanted)
        assert summary["sent"] == summary["accepted"] == 40  # no faults asked: every record valid
        auth = {"Authorization": f"Bearer {empty.admin_key}"}
        for dataset_id in wanted:
            dataset = httpx.get(
                f"{empty.base}/catalog/v1/datasets/{dataset_id}", headers=auth, timeout=5
            ).json()
            assert dataset["current_version"] == "1.1.0"
