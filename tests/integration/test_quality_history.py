"""Quality's stored history on SQLite and PostgreSQL: windows, downsampling, rankings, breaches."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy.orm import Session

from services.common import db
from services.common.auth import Principal, PrincipalKind
from services.common.bus import Message
from services.common.outbox import Outbox
from services.quality import queries, store
from services.quality.exceptions import DatasetNotFound, InvalidTimeRange
from services.quality.models import QualityWindow, outbox
from services.quality.projection import QualityCatalog
from services.quality.settings import QualitySettings
from services.quality.windows import WindowScore
from tests.factories import catalog_records, contract_state, dataset_event_state

START = datetime(2026, 11, 1, tzinfo=UTC)
EVENT_SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "events"


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = db.create_db_engine(database_url)
    db.migrate(database_url, Path(store.__file__).parent / "migrations", "alembic_version_quality", engine)
    with db.unit_of_work(db.session_factory(engine)) as unit:
        yield unit
    engine.dispose()


def catalog_of(*dataset_ids: str, department: str = "health-commission") -> QualityCatalog:
    catalog = QualityCatalog()
    records = catalog_records(
        contracts=[contract_state(d) for d in dataset_ids],
        datasets=[dataset_event_state(d, department_id=department) for d in dataset_ids],
    )
    for offset, record in enumerate(records):
        catalog.apply(Message(record.topic, 0, offset, record.key, record.value, record.headers, 0))
    return catalog


def scored(dataset_id: str, at: datetime, overall: float, records: int = 100, **extra: object) -> WindowScore:
    scores: dict[str, float | None] = {
        "validity": overall,
        "completeness": overall,
        "uniqueness": overall,
        "conformity": overall,
        "timeliness": overall,
    }
    return WindowScore(
        dataset_id=dataset_id,
        contract_version="1.0.0",
        opened_at=at - timedelta(minutes=1),
        closed_at=at,
        records=records,
        accepted=records,
        rejected=0,
        scores=scores,
        overall=overall,
        freshness_s=1.0,
        frequency_s=900,
        latency_s=300,
        last_event_at=at,
        **extra,  # type: ignore[arg-type]
    )


def test_history_returns_every_window_or_record_weighted_buckets(session: Session) -> None:
    settings = QualitySettings()
    box = Outbox(outbox)
    catalog = catalog_of("health.history")
    for minute in range(100):
        # Every other window is twice the size and 10 points worse.
        big = minute % 2 == 1
        store.store_window(
            session=session,
            outbox=box,
            score=scored(
                "health.history",
                START + timedelta(minutes=minute),
                80.0 if big else 90.0,
                200 if big else 100,
            ),
            settings=settings,
        )
    session.flush()
    end = START + timedelta(minutes=100)
    every = queries.quality_history(
        session=session, catalog=catalog, dataset_id="health.history", start=START, end=end, max_points=500
    )
    assert not every["downsampled"] and len(every["points"]) == 100
    buckets = queries.quality_history(
        session=session, catalog=catalog, dataset_id="health.history", start=START, end=end, max_points=10
    )
    assert buckets["downsampled"] and len(buckets["points"]) == 10
    first = buckets["points"][0]
    assert first["windows"] == 10 and first["records"] == 1500
    assert first["scores"]["overall"] == pytest.approx((5 * 100 * 90 + 5 * 200 * 80) / 1500, abs=1e-3)
    assert first["min_overall"] == 80.0
    with pytest.raises(InvalidTimeRange):
        queries.quality_history(
            session=session, catalog=catalog, dataset_id="health.history", start=end, end=START, max_points=10
        )
    with pytest.raises(DatasetNotFound):
        queries.quality_history(
            session=session, catalog=catalog, dataset_id="health.nothing", start=START, end=end, max_points=10
        )


def test_every_current_score_is_announced_and_moves_beyond_the_threshold_are_significant(
    session: Session,
) -> None:
    # Each new current score reaches platform.quality, so that the catalog's record never shows an
    # older figure than the quality endpoint; the threshold marks the moves an alert acts on.
    settings = QualitySettings(score_change_threshold=5.0)
    box = Outbox(outbox)
    for minute, overall in enumerate([90.0, 88.0, 84.0, 86.0, 99.0]):
        store.store_window(
            session=session,
            outbox=box,
            score=scored("health.announced", START + timedelta(minutes=minute), overall),
            settings=settings,
        )
    session.flush()
    rows = session.execute(outbox.select().order_by(outbox.c.id)).all()
    assert {row.topic for row in rows} == {"platform.quality"} and {row.key for row in rows} == {
        b"health.announced"
    }
    announced = [json.loads(row.value) for row in rows]
    assert [event["overall"] for event in announced] == [90.0, 88.0, 84.0, 86.0, 99.0]
    assert [event["change"] for event in announced] == [None, -2.0, -4.0, 2.0, 13.0]
    # A move is measured from the score announced just before it: 88 -> 84 is -4, not significant.
    assert [event["significant"] for event in announced] == [True, False, False, False, True]
    schema = json.loads((EVENT_SCHEMAS / "quality.score.json").read_text(encoding="utf-8"))
    for event in announced:
        Draft202012Validator(schema).validate(event)


def test_a_window_stored_late_does_not_replace_a_newer_current_score(session: Session) -> None:
    settings = QualitySettings()
    box = Outbox(outbox)
    catalog = catalog_of("health.late-window")
    newer = scored("health.late-window", START + timedelta(minutes=5), 70.0)
    older = scored("health.late-window", START, 95.0)
    store.store_window(session=session, outbox=box, score=newer, settings=settings)
    store.store_window(session=session, outbox=box, score=older, settings=settings)
    session.flush()
    [current] = store.current_windows(session, ["health.late-window"]).values()
    assert current.overall == 70.0
    ranked = queries.rankings(session=session, catalog=catalog, by="dataset")["items"]
    assert [entry["overall"] for entry in ranked if entry["dataset_id"] == "health.late-window"] == [70.0]


def test_a_late_window_opens_a_latency_breach_and_a_timely_one_resolves_it(session: Session) -> None:
    settings = QualitySettings()
    box = Outbox(outbox)
    catalog = catalog_of("health.latency")
    late = scored(
        "health.latency", START, 70.0, latency_breached=True, measured=100, late=30, lateness_p95_s=5000.0
    )
    store.store_window(session=session, outbox=box, score=late, settings=settings)
    state = store.dataset_state(session=session, dataset_id="health.latency", now=START)
    assert state.latency_breach_id is not None
    operator = Principal(id="city-ops", kind=PrincipalKind.operator, name="City ops")
    body = queries.latest_quality(
        session=session,
        catalog=catalog,
        settings=settings,
        dataset_id="health.latency",
        now=START + timedelta(minutes=1),
        reader=operator,
    )
    assert [b["kind"] for b in body["sla_breaches"]] == ["latency"]
    store.store_window(
        session=session,
        outbox=box,
        score=scored("health.latency", START + timedelta(minutes=1), 99.0, measured=100),
        settings=settings,
    )
    assert (
        store.dataset_state(session=session, dataset_id="health.latency", now=START).latency_breach_id is None
    )


def test_rankings_put_the_worst_and_the_unscored_first(session: Session) -> None:
    settings = QualitySettings()
    box = Outbox(outbox)
    catalog = catalog_of("health.good", "health.bad", "health.silent")
    store.store_window(
        session=session, outbox=box, score=scored("health.good", START, 99.0), settings=settings
    )
    store.store_window(
        session=session, outbox=box, score=scored("health.bad", START, 60.0), settings=settings
    )
    session.flush()
    ranked = queries.rankings(session=session, catalog=catalog, by="dataset")["items"]
    assert [entry["dataset_id"] for entry in ranked] == ["health.silent", "health.bad", "health.good"]
    assert ranked[0]["overall"] is None  # never scored: not a silent 100
    [department] = queries.rankings(session=session, catalog=catalog, by="department")["items"]
    assert department["overall"] == pytest.approx(79.5) and department["worst_dataset"] == "health.bad"
    assert session.query(QualityWindow).count() == 2


def test_the_rate_is_records_over_the_time_the_windows_cover(session: Session) -> None:
    # A feed at 10 records/s that quality has seen for 30 s of the last 5 minutes: 10/s, not
    # 300 records / 300 s.
    settings = QualitySettings()
    box = Outbox(outbox)
    catalog = catalog_of("health.rate")
    for second in (10, 20, 30):
        window = dataclasses.replace(
            scored("health.rate", START + timedelta(seconds=second), 90.0),
            opened_at=START + timedelta(seconds=second - 10),
        )
        store.store_window(session=session, outbox=box, score=window, settings=settings)
    session.flush()
    recent = queries.quality_history(
        session=session,
        catalog=catalog,
        dataset_id="health.rate",
        start=START + timedelta(seconds=30) - timedelta(minutes=5),
        end=START + timedelta(seconds=31),
        max_points=500,
    )
    assert recent["records_per_s"] == 10.0
    assert queries.records_per_second([]) == 0.0
    burst = [(START, START, 500)]  # one window closed within the same instant
    assert queries.records_per_second(burst) == 500.0
