"""The public formats of an opportunity list: CSV a spreadsheet opens without running anything,
and an Atom feed with the elements RFC 4287 requires."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from services.catalog.programme.publication import openings_atom, openings_csv
from services.catalog.programme.schemas import OpportunityListRead

ATOM = "{http://www.w3.org/2005/Atom}"
WHEN = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _listing(title: str = "Wait-aware booking") -> OpportunityListRead:
    opening = {
        "id": "on-1",
        "list_id": "q1-2027",
        "position": 1,
        "title": title,
        "description": "Book at the shortest queue.",
        "owner_department_id": "health-commission",
        "datasets": ["health.outpatient-visits", "transport.bus-arrivals"],
        "data_offered": "Waits per clinic",
        "conditions": "Free for residents",
        "deadline": datetime(2027, 3, 31, tzinfo=UTC),
        "need_ids": ["need-1"],
        "domains": ["health"],
        "serves_residents": True,
        "status": "open",
        "created_at": WHEN,
        "updated_at": WHEN,
    }
    return OpportunityListRead.model_validate(
        {
            "id": "q1-2027",
            "number": 3,
            "title": "2027 Q1, transport and health",
            "summary": "",
            "status": "published",
            "published_at": WHEN,
            "created_by": "city-ops",
            "created_at": WHEN,
            "updated_at": WHEN,
            "openings": [opening],
        }
    )


def test_csv_has_one_row_per_opening_and_neutralises_formulas() -> None:
    rows = list(csv.DictReader(io.StringIO(openings_csv(_listing('=HYPERLINK("http://x","y")')))))
    assert len(rows) == 1
    row = rows[0]
    assert row["title"] == '\'=HYPERLINK("http://x","y")'
    assert row["datasets"] == "health.outpatient-visits transport.bus-arrivals"
    assert (row["list_number"], row["deadline"], row["serves_residents"]) == (
        "3",
        "2027-03-31T00:00:00+00:00",
        "yes",
    )


def test_the_atom_feed_has_the_elements_rfc_4287_requires() -> None:
    body = openings_atom(
        [_listing()], self_url="https://city.example/feed", list_url="https://city.example/{list_id}"
    )
    feed = ET.fromstring(body)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}id") and feed.findtext(f"{ATOM}title")
    assert feed.findtext(f"{ATOM}updated") == "2026-12-07T10:00:00Z"
    assert feed.find(f"{ATOM}author/{ATOM}name") is not None
    assert feed.find(f"{ATOM}link[@rel='self']").get("href") == "https://city.example/feed"  # type: ignore[union-attr]
    [entry] = feed.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}id") == "urn:citybase:opening:on-1"
    assert entry.findtext(f"{ATOM}title") == "No. 3 2027 Q1, transport and health · 1. Wait-aware booking"
    assert entry.findtext(f"{ATOM}updated") == "2026-12-07T10:00:00Z"
    assert entry.find(f"{ATOM}link[@rel='alternate']").get("href") == "https://city.example/q1-2027"  # type: ignore[union-attr]
    assert "Deadline: 2027-03-31T00:00:00Z" in (entry.findtext(f"{ATOM}summary") or "")


def test_an_empty_feed_is_still_a_valid_feed() -> None:
    feed = ET.fromstring(openings_atom([], self_url="https://city.example/feed", list_url="{list_id}"))
    assert feed.findtext(f"{ATOM}updated") and feed.findall(f"{ATOM}entry") == []
