"""The catalog's copy of each dataset's latest quality score and utilization (from ``platform.quality``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.catalog.models import Base


class DatasetQuality(Base):
    __tablename__ = "catalog_dataset_quality"

    dataset_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("catalog_datasets.id", ondelete="CASCADE"), primary_key=True
    )
    overall: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any]]
    problems: Mapped[list[str]]
    window_closed_at: Mapped[datetime]
    contract_version: Mapped[str | None] = mapped_column(String(64))
    open_breaches: Mapped[list[str]]
    updated_at: Mapped[datetime]


class DatasetUtilization(Base):
    """The dataset's utilization as quality last announced it: the same score as quality's
    utilization endpoint, shown on the catalog record."""

    __tablename__ = "catalog_dataset_utilization"

    dataset_id: Mapped[str] = mapped_column(
        String(200), ForeignKey("catalog_datasets.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[float] = mapped_column(Float)
    active_grants: Mapped[int] = mapped_column(Integer)
    grants_used: Mapped[int] = mapped_column(Integer)
    active_subscribers: Mapped[int] = mapped_column(Integer)
    records_last_day: Mapped[int] = mapped_column(Integer)
    last_use: Mapped[datetime | None]
    computed_at: Mapped[datetime]
