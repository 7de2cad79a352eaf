"""Every CLI test runs in English with no config file, key or URL of the machine running it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def clean_cli_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    config = tmp_path / "config" / "citybase.toml"
    monkeypatch.setenv("CITYBASE_CONFIG", str(config))
    for name in ("CITYBASE_URL", "CITYBASE_API_KEY", "CITYBASE_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    return config
