from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import Settings


def test_embedded_defaults_live_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/citybase.db"
    assert settings.bus_url == f"embedded://{tmp_path.resolve()}/bus.db"


def test_environment_variables_use_the_citybase_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYBASE_BUS_URL", "kafka://127.0.0.1:9092")
    monkeypatch.setenv("CITYBASE_DATABASE_URL", "postgresql+psycopg://u:p@127.0.0.1/db")
    monkeypatch.setenv("CITYBASE_PORT", "9000")
    settings = Settings()
    assert settings.bus_url == "kafka://127.0.0.1:9092"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.port == 9000
