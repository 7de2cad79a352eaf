"""No secret has a usable default: ``citybase up`` makes feeds' secret per data directory (mode
0600), ``citybase serve feeds`` on Kafka or PostgreSQL refuses to start without one."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from citybase.cli import app
from citybase.platform import one_process_feeds_settings
from services.common.secret_file import MissingSecret, data_dir_secret
from services.common.settings import Settings
from services.feeds.runtime import FeedsRuntime
from services.feeds.settings import FeedsSettings

runner = CliRunner()
KAFKA = "kafka://127.0.0.1:9"
POSTGRES = "postgresql+psycopg://citybase@127.0.0.1:9/citybase"


@pytest.mark.parametrize(
    "deployment",
    [{"CITYBASE_BUS_URL": KAFKA}, {"CITYBASE_DATABASE_URL": POSTGRES}],
    ids=["kafka", "postgresql"],
)
def test_serve_feeds_refuses_to_start_in_a_deployment_without_a_secret(
    tmp_path: Path, deployment: dict[str, str]
) -> None:
    result = runner.invoke(
        app,
        ["serve", "feeds"],
        env={"CITYBASE_DATA_DIR": str(tmp_path), "CITYBASE_FEEDS_SECRET": None, **deployment},
    )
    assert result.exit_code == 2, result.output
    assert "CITYBASE_FEEDS_SECRET is not set" in result.output
    assert not (tmp_path / "secrets").exists(), "a deployment never falls back to a file of its own"


@pytest.mark.parametrize("secret", ["citybase-local-feeds-secret", "short", " " * 40])
def test_a_short_secret_is_refused(tmp_path: Path, secret: str) -> None:
    """Among them the default that used to ship, which anyone could read in the code."""
    result = runner.invoke(
        app,
        ["serve", "feeds"],
        env={"CITYBASE_DATA_DIR": str(tmp_path), "CITYBASE_BUS_URL": KAFKA, "CITYBASE_FEEDS_SECRET": secret},
    )
    assert result.exit_code == 2, result.output
    assert "at least 32 characters" in result.output


def test_feeds_settings_have_no_secret_by_default_and_a_deployment_must_set_one(tmp_path: Path) -> None:
    assert FeedsSettings.model_fields["secret"].default is None
    with pytest.raises(MissingSecret, match="CITYBASE_FEEDS_SECRET"):
        FeedsSettings(secret=None).with_secret(Settings(data_dir=tmp_path, bus_url=KAFKA))
    with pytest.raises(MissingSecret, match="resolve"):
        FeedsSettings(secret=None).signing_key()
    mine = "x" * 40
    assert FeedsSettings(secret=mine).with_secret(
        Settings(data_dir=tmp_path, bus_url=KAFKA)
    ).signing_key() == (mine.encode())


def test_up_makes_one_secret_per_data_directory_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CITYBASE_FEEDS_SECRET", raising=False)
    first = one_process_feeds_settings(Settings(data_dir=tmp_path / "a")).signing_key()
    again = one_process_feeds_settings(Settings(data_dir=tmp_path / "a")).signing_key()
    other = one_process_feeds_settings(Settings(data_dir=tmp_path / "b")).signing_key()
    assert first == again != other
    assert len(first) >= 32
    path = tmp_path / "a" / "secrets" / "feeds"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # up on Kafka and PostgreSQL too: one process reads its own cursors
    on_kafka = Settings(data_dir=tmp_path / "a", bus_url=KAFKA, database_url=POSTGRES)
    assert one_process_feeds_settings(on_kafka).signing_key() == first
    monkeypatch.setenv("CITYBASE_FEEDS_SECRET", "y" * 40)
    assert one_process_feeds_settings(Settings(data_dir=tmp_path / "a")).signing_key() == b"y" * 40


def test_a_secret_file_others_may_read_is_not_trusted(tmp_path: Path) -> None:
    data_dir_secret(tmp_path, "feeds")
    (tmp_path / "secrets" / "feeds").chmod(0o644)
    with pytest.raises(MissingSecret, match="chmod 600"):
        data_dir_secret(tmp_path, "feeds")


def test_up_serves_feeds_with_the_data_directorys_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    result = runner.invoke(
        app, ["up", "--no-examples"], env={"CITYBASE_DATA_DIR": str(tmp_path), "CITYBASE_FEEDS_SECRET": None}
    )
    assert result.exit_code == 0, result.output
    (platform,) = served
    feeds = platform.state.services["feeds"]
    secret = (tmp_path / "secrets" / "feeds").read_text().strip()
    assert stat.S_IMODE((tmp_path / "secrets" / "feeds").stat().st_mode) == 0o600
    with TestClient(platform):
        assert feeds.state.runtime.service_as(FeedsRuntime).feeds.settings.signing_key() == secret.encode()


def test_up_refuses_a_short_secret(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["up", "--no-examples"],
        env={"CITYBASE_DATA_DIR": str(tmp_path), "CITYBASE_FEEDS_SECRET": "short"},
    )
    assert result.exit_code == 2, result.output
    assert "at least 32 characters" in result.output
