"""Quality announces a dataset's utilization on platform.quality when it changes (once for every
dataset after a start), and forgets an announcement whose transaction rolled back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from services.common import db
from services.common.outbox import Outbox
from services.quality.models import Base, outbox
from services.quality.utilization import UtilizationAnnouncer

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _entry(dataset_id: str, score: float, subscribers: int = 1) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "domain_id": "transport",
        "owner_department_id": "transit",
        "active_grants": 2,
        "grants_used": 1,
        "active_subscribers": subscribers,
        "records_last_day": 500,
        "last_use": datetime(2026, 12, 7, 11, 0, tzinfo=UTC),
        "days_since_last_use": 0.04,
        "score": score,
    }


@pytest.fixture
def sessions() -> sessionmaker[Any]:
    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    return sessionmaker(engine)


def _announced(sessions: sessionmaker[Any]) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = session.execute(sa.select(outbox.c.key, outbox.c.value).order_by(outbox.c.id)).all()
    return [{"key": key.decode(), **json.loads(value)} for key, value in rows]


def test_every_dataset_once_then_only_what_changed(sessions: sessionmaker[Any]) -> None:
    announcer = UtilizationAnnouncer(Outbox(outbox))
    with db.unit_of_work(sessions) as session:
        assert (
            announcer.announce(session, [_entry("transport.a", 40.0), _entry("transport.b", 70.0)], NOW) == 2
        )
    with db.unit_of_work(sessions) as session:
        assert (
            announcer.announce(session, [_entry("transport.a", 40.0), _entry("transport.b", 70.0)], NOW) == 0
        )
    with db.unit_of_work(sessions) as session:
        changed = [_entry("transport.a", 40.0, subscribers=2), _entry("transport.b", 70.0)]
        assert announcer.announce(session, changed, NOW) == 1

    announced = _announced(sessions)
    assert [(a["key"], a["active_subscribers"]) for a in announced] == [
        ("transport.a", 1),
        ("transport.b", 1),
        ("transport.a", 2),
    ]
    first = announced[0]
    assert first["score"] == 40.0 and first["last_use"] == "2026-12-07T11:00:00+00:00"


def test_an_announcement_rolled_back_is_made_again(sessions: sessionmaker[Any]) -> None:
    announcer = UtilizationAnnouncer(Outbox(outbox))
    with pytest.raises(RuntimeError), db.unit_of_work(sessions) as session:
        announcer.announce(session, [_entry("transport.a", 40.0)], NOW)
        raise RuntimeError("the refresh failed after the outbox row was written")
    assert _announced(sessions) == []
    with db.unit_of_work(sessions) as session:
        assert announcer.announce(session, [_entry("transport.a", 40.0)], NOW) == 1
    assert len(_announced(sessions)) == 1
