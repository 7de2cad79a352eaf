"""The ingest service's app: ``create_app(settings)`` builds it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.common.app import InfrastructureProvider, ServiceSpec, build_service_app
from services.common.settings import Settings

NAME = "ingest"

SPEC = ServiceSpec(
    name=NAME,
    title="citybase ingest",
    description=(
        "Contract-checked streams in: records over HTTP or from `raw.<dataset>`, validated against the dataset's active contract and written to `ds.<dataset>` as CloudEvents, or to `dlq.<dataset>` with the reason."
    ),
    migrations=Path(__file__).parent / "migrations",
)


def create_app(settings: Settings, *, infrastructure: InfrastructureProvider | None = None) -> FastAPI:
    return build_service_app(SPEC, settings, infrastructure=infrastructure)
