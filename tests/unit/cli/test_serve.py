"""``citybase serve``: one service per process, or several worker processes of it on one port."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from citybase.cli import SERVED_SERVICE_ENV, app, served_app

runner = CliRunner()


def test_several_workers_need_kafka(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["serve", "ingest", "--workers", "2"],
        env={"CITYBASE_DATA_DIR": str(tmp_path), "CITYBASE_BUS_URL": ""},
    )
    assert result.exit_code == 2
    assert "needs CITYBASE_BUS_URL=kafka://" in result.output


def test_workers_must_be_positive() -> None:
    result = runner.invoke(app, ["serve", "ingest", "--workers", "0"])
    assert result.exit_code != 0


def test_a_worker_builds_the_service_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SERVED_SERVICE_ENV, "ingest")
    monkeypatch.setenv("CITYBASE_DATA_DIR", str(tmp_path))
    built = served_app()
    assert built.title == "citybase ingest"
    assert built.state.spec.name == "ingest"
