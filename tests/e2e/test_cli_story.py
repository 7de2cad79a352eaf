"""The authorized-operation story with the command line only, against a served platform: an admin
makes a domain, a department with its publisher and approver, a scenario and their keys; the
department registers a contract and publishes; the scenario asks; the approver narrows and
approves; the scenario subscribes; the admin revokes; the subscription shows delivery stopped."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from citybase.cli import app
from services.common.worker import wait_until
from tests.support.contracts import as_yaml, contract_document, contract_property
from tests.support.platform import Platform, in_process

runner = CliRunner()
TRANSCRIPT = os.environ.get("CITYBASE_STORY_TRANSCRIPT")
"""A file to write each command of the story and its answer to (for people reading it)."""
DATASET = "water.meter-readings"


def water_contract() -> str:
    return as_yaml(
        contract_document(
            contract_property("reading_id", primaryKey=True, primaryKeyPosition=1, required=True),
            contract_property("meter_id", required=True),
            contract_property("district"),
            contract_property("litres", "number"),
            id=DATASET,
            name="Water meter readings",
            domain="water",
            customProperties=[
                {"property": "citybase.classification", "value": "conditional"},
                {"property": "citybase.department", "value": "water-authority"},
            ],
        )
    )


class Cli:
    """``citybase`` as a person types it, against the platform, with one key at a time."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def run(self, key: str, *args: str, code: int = 0, url: str = "") -> Any:
        result = runner.invoke(app, [*args, "--url", self.platform.base + url, "--key", key])
        assert result.exit_code == code, f"citybase {' '.join(args)}: {result.output}"
        if TRANSCRIPT:
            # The story as a person reads it: each command (its key left out) and its answer.
            with Path(TRANSCRIPT).open("a", encoding="utf-8") as out:
                out.write(f"$ citybase {' '.join(args)}\n{result.output}(exit {result.exit_code})\n\n")
        return result

    def json(self, key: str, *args: str) -> Any:
        return json.loads(self.run(key, *args, "--json").stdout)

    def key_of(self, admin: str, principal: str) -> str:
        key = str(self.json(admin, "keys", "issue", principal, "--name", "story")["key"])
        self.platform.wait_for_key(key)
        return key


def test_the_whole_story_with_the_cli_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYBASE_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("LANG", "C.UTF-8")
    with in_process(tmp_path, served=True) as platform:
        cli = Cli(platform)
        admin = platform.admin_key

        # a contract for a domain nobody made yet: the CLI says which, and how to make it
        contract = tmp_path / "water.yaml"
        contract.write_text(water_contract())
        missing = cli.run(admin, "contracts", "register", str(contract), code=1)
        assert "404 Domain not found" in missing.stderr
        assert "citybase domains create water --name NAME --owner DEPARTMENT" in missing.stdout

        # the admin: a domain, its department, a publisher and an approver of it, a scenario, keys
        cli.run(admin, "domains", "create", "water", "--name", "Water supply")
        created = cli.run(
            admin,
            "departments",
            "create",
            "water-authority",
            "--name",
            "Water Authority",
            "--kind",
            "bureau",
            "--domain",
            "water",
        )
        assert "water-authority" in created.stdout
        owners = {
            domain["id"]: domain["owner_department_id"] for domain in cli.json(admin, "domains", "list")
        }
        assert owners["water"] == "water-authority"
        cli.run(
            admin,
            "principals",
            "create",
            "water-publisher",
            "--kind",
            "department",
            "--name",
            "Publisher",
            "--department",
            "water-authority",
        )
        cli.run(
            admin,
            "principals",
            "create",
            "water-approver",
            "--kind",
            "approver",
            "--name",
            "Approver",
            "--department",
            "water-authority",
        )
        cli.run(
            admin,
            "scenarios",
            "create",
            "leak-watch",
            "--name",
            "Leak watch",
            "--organisation",
            "Water Lab",
            "--contact",
            "lab@example.cn",
        )
        publisher = cli.key_of(admin, "water-publisher")
        approver = cli.key_of(admin, "water-approver")
        scenario = cli.key_of(admin, "leak-watch")

        # the department registers its contract
        contract = tmp_path / "water.yaml"
        contract.write_text(water_contract())
        assert (
            "registered water.meter-readings 1.0.0"
            in cli.run(publisher, "contracts", "register", str(contract)).stdout
        )

        # the scenario asks, the approver narrows (no district, meter ids hashed, a week) and approves
        request = cli.json(
            scenario,
            "requests",
            "create",
            "--dataset",
            DATASET,
            "--purpose",
            "Find leaks by district",
            "--category",
            "public_service",
            "--field",
            "reading_id",
            "--field",
            "meter_id",
            "--field",
            "district",
            "--field",
            "litres",
            "--duration-days",
            "30",
        )
        assert request["status"] == "pending"
        assert [r["id"] for r in cli.json(approver, "requests", "list", "--status", "pending")["items"]] == [
            request["id"]
        ]
        approved = cli.json(
            approver,
            "requests",
            "approve",
            request["id"],
            "--reason",
            "Leak finding serves residents",
            "--field",
            "reading_id",
            "--field",
            "meter_id",
            "--field",
            "litres",
            "--mask",
            "meter_id=hash",
            "--duration-days",
            "7",
        )
        grant = cli.json(scenario, "grants", "show", approved["grant_id"])
        assert grant["fields"] == ["reading_id", "meter_id", "litres"]
        assert grant["masking"]["meter_id"]["kind"] == "hash"

        # the scenario subscribes once the grant reached feeds, and records flow
        def subscribed() -> bool:
            result = runner.invoke(
                app,
                [
                    "subscriptions",
                    "create",
                    "--dataset",
                    DATASET,
                    "--start",
                    "earliest",
                    "--json",
                    "--url",
                    platform.base,
                    "--key",
                    scenario,
                ],
            )
            subscribed.answer = result.stdout  # type: ignore[attr-defined]
            return result.exit_code == 0

        assert wait_until(subscribed, 10, 0.2)
        subscription = json.loads(subscribed.answer)  # type: ignore[attr-defined]
        readings = tmp_path / "readings.ndjson"
        readings.write_text(
            "".join(
                json.dumps(
                    {"reading_id": f"r{i}", "meter_id": f"M{i % 3}", "district": "Putuo", "litres": 1.5 * i}
                )
                + "\n"
                for i in range(10)
            )
        )
        cli.run(publisher, "publish", str(readings), "--dataset", DATASET, url="/ingest")

        def position() -> dict[str, Any]:
            return dict(cli.json(scenario, "subscriptions", "position", subscription["id"]))

        assert wait_until(lambda: (position().get("lag") or 0) == 10, 10, 0.2)
        assert position()["grant"]["status"] == "active"

        # the admin revokes; the subscription shows that its grant no longer delivers
        revoked = cli.json(admin, "grants", "revoke", approved["grant_id"], "--reason", "Pilot ended")
        assert revoked["status"] == "revoked"
        assert wait_until(lambda: position()["grant"]["status"] == "revoked", 10, 0.2)
        shown = cli.run(scenario, "subscriptions", "position", subscription["id"]).stdout
        assert "revoked" in shown
        refused = cli.run(scenario, "subscriptions", "resume", subscription["id"], code=1)
        assert "403" in refused.stderr
        # the same refusal in Chinese: the CLI asks for it, the service answers in it
        chinese = cli.run(scenario, "subscriptions", "resume", subscription["id"], "--lang", "zh-CN", code=1)
        assert chinese.stderr.startswith("403 ") and re.search(
            "[\u4e00-\u9fff]", chinese.stderr.splitlines()[0]
        )
