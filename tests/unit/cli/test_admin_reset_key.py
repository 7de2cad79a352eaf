"""``citybase admin reset-key``: a lost admin key is replaced through the data directory, on a
platform that keeps running; the old keys stop working everywhere."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from citybase.cli import app
from services.common.worker import wait_until
from tests.support.platform import in_process

runner = CliRunner()


def test_reset_key_revokes_the_admin_keys_and_prints_a_new_one_once(tmp_path: Path) -> None:
    with in_process(tmp_path) as platform:
        lost = platform.admin_key
        spare = platform.ok("POST", "/catalog/v1/principals/admin/keys", json={"name": "spare"})["key"]
        platform.wait_for_key(spare)

        result = runner.invoke(app, ["admin", "reset-key", "--data-dir", str(tmp_path / "data")])

        assert result.exit_code == 0, result.output
        printed = re.findall(r"cbk_[0-9a-f]{8}_[A-Za-z0-9_-]+", result.output)
        assert len(printed) == 1
        new = printed[0]
        assert new not in (lost, spare)
        assert "revoked 2 key(s) of admin" in result.output
        platform.wait_for_key(new)
        for old in (lost, spare):
            assert wait_until(
                lambda old=old: platform.call("GET", "/catalog/v1/me", old).status_code == 401, 10, 0.1
            )
        keys = platform.ok("GET", "/catalog/v1/principals/admin/keys", new)
        assert [k["revoked_at"] is None for k in keys] == [False, False, True]
        audit = platform.ok("GET", "/catalog/v1/audit", new, params={"action": "api_key.revoke"})
        revoked = {k["prefix"] for k in keys if k["revoked_at"] is not None}
        assert {entry["resource_id"] for entry in audit["items"]} >= revoked


def test_reset_key_without_a_database_says_where_it_looked(tmp_path: Path) -> None:
    result = runner.invoke(app, ["admin", "reset-key", "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "no citybase database at" in result.output
    assert not (tmp_path / "nothing" / "citybase.db").exists()
