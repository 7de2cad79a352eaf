"""Settings of every citybase process, read once from the environment (prefix ``CITYBASE_``).

Built by the process entry point and handed to ``create_app(settings)``; nothing reads the
environment at import time, so tests build apps with their own settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.memory import DEFAULT_ARENAS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYBASE_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default=Path(".citybase"), description="Where the embedded defaults keep their files."
    )
    database_url: str = Field(
        default="", description="SQLAlchemy URL; default a SQLite file under the data dir."
    )
    bus_url: str = Field(
        default="",
        description="embedded:///path/to/bus.db (default, under the data dir) or kafka://host:port",
    )
    public_url: str | None = Field(
        default=None,
        description="The platform's public root URL for links in DCAT and AsyncAPI; default from each request.",
    )
    kafka_public_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap address as clients use it, shown in AsyncAPI documents."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    migrate_on_start: bool = Field(
        default=True, description="Run the service's migrations when it starts (make run); off in deployment."
    )
    readiness_timeout_s: float = 2.0
    audit_checkpoint_interval_s: float = Field(
        default=60.0, gt=0, description="How often the catalog checkpoints the head of its audit chain."
    )
    audit_refusal_window_s: float = Field(
        default=60.0,
        gt=0,
        description="Identical refusals (same principal, action, resource, reason) within this many "
        "seconds are audited as one entry and one more with their count.",
    )
    log_level: str = "INFO"
    malloc_arenas: int = Field(
        default=DEFAULT_ARENAS,
        ge=1,
        description="Arenas glibc's malloc may keep in each process (services.common.memory).",
    )

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'citybase.db').resolve()}"
        if not self.bus_url:
            self.bus_url = f"embedded://{(self.data_dir / 'bus.db').resolve()}"
        return self

    @property
    def one_machine(self) -> bool:
        """SQLite and the embedded bus: the platform of one machine, not a deployment."""
        return self.bus_url.startswith("embedded://") and self.database_url.startswith("sqlite")

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
