"""The needs board's rules on the service functions (SQLite): overdue commitments, similar needs,
and the normalising of searches that found nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.catalog.access.context import Collaborators
from services.catalog.access.settings import AccessSettings
from services.catalog.needs import service
from services.catalog.needs.schemas import NeedCommit, NeedCreate
from services.catalog.needs.settings import NeedsSettings
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from tests.support.catalog_units import HEALTH, CatalogWorld

VISIT = Principal("one-stop-visit", PrincipalKind.scenario, "One-stop visit")
OPERATOR = Principal("ops", PrincipalKind.operator, "Operator")
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _ctx(catalog: CatalogWorld, actor: Principal, now: datetime = START) -> Collaborators:
    return Collaborators(
        session=catalog.session,
        events=catalog.events,
        audit=catalog.auditor(actor),
        settings=AccessSettings(),
        clock=lambda: now,
    )


def _file(catalog: CatalogWorld, title: str, data_wanted: str = "Free beds per ward") -> str:
    filed = service.file_need(
        _ctx(catalog, VISIT),
        actor=VISIT,
        payload=NeedCreate(
            title=title,
            domains=["health"],
            data_wanted=data_wanted,
            purpose="Route patients",
            purpose_category="public_service",
            serves="Outpatients",
            frequency="high",
            urgency="urgent",
        ),
        settings=NeedsSettings(),
    )
    return filed.need.id


@pytest.mark.parametrize(
    ("query", "counted"),
    [
        ("  Bike   LANES ", "bike lanes"),
        ("bike lanes 13812345678", "bike lanes"),
        ("bike lanes +86-138-1234-5678", "bike lanes"),
        ("someone@example.cn bike lanes", "bike lanes"),
        ("bike lanes 31010119900101123X", "bike lanes"),
        ("13812345678", None),
        ("空气质量 2027", "空气质量 2027"),
    ],
)
def test_a_missed_search_is_counted_lowercased_without_personal_data(query: str, counted: str | None) -> None:
    assert service.normalised_query(query) == counted


def test_a_commitment_past_its_date_is_overdue_until_fulfilled(catalog: CatalogWorld) -> None:
    need_id = _file(catalog, "Free hospital beds")
    committed = service.commit_to_publish(
        _ctx(catalog, HEALTH),
        actor=HEALTH,
        need_id=need_id,
        payload=NeedCommit(commit_by=date(2026, 12, 10)),
    )
    assert (committed.status, committed.overdue) == ("committed", False)
    on_the_day = service.get_need(
        _ctx(catalog, VISIT, datetime(2026, 12, 10, 23, 0, tzinfo=UTC)), actor=VISIT, need_id=need_id
    )
    assert on_the_day.overdue is False
    late = _ctx(catalog, VISIT, datetime(2026, 12, 11, 0, 1, tzinfo=UTC))
    assert service.get_need(late, actor=VISIT, need_id=need_id).overdue is True
    listed, _ = service.list_needs(late, actor=VISIT, filters=service.NeedFilter(overdue=True))
    assert [need.id for need in listed] == [need_id]
    on_time, _ = service.list_needs(
        _ctx(catalog, VISIT), actor=VISIT, filters=service.NeedFilter(overdue=True)
    )
    assert on_time == []
    states = [event["status"] for event in catalog.announced(catalog_events.NEED)]
    assert states == ["open", "committed"]


def test_similar_open_needs_are_ranked_by_the_words_they_share(catalog: CatalogWorld) -> None:
    beds = _file(catalog, "Free hospital beds in wards")
    _file(catalog, "Bus arrivals near hospitals", data_wanted="Arrival times of buses")
    parking = _file(catalog, "Hospital parking spaces", data_wanted="Free parking near the hospital")
    filed = service.file_need(
        _ctx(catalog, OPERATOR, START + timedelta(minutes=1)),
        actor=OPERATOR,
        payload=NeedCreate(
            title="Hospital beds free now",
            domains=["health"],
            data_wanted="Free beds per ward",
            purpose="Tell residents",
            purpose_category="public_service",
            serves="Residents",
            frequency="high",
            urgency="urgent",
        ),
        settings=NeedsSettings(similar_limit=2),
    )
    assert [similar.id for similar in filed.similar] == [beds, parking]
    assert filed.similar[0].score > filed.similar[1].score
