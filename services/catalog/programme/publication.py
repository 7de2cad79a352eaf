"""Published opportunity lists in the formats anyone reads without a key: CSV (one row per
opening, for spreadsheets) and an Atom feed (RFC 4287, one entry per opening, for feed readers and
the city's portal)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from services.catalog.programme.schemas import OpportunityListRead

ATOM = "http://www.w3.org/2005/Atom"
CSV_COLUMNS = (
    "list_id",
    "list_number",
    "list_title",
    "published_at",
    "opening_id",
    "position",
    "title",
    "owner_department_id",
    "datasets",
    "data_offered",
    "conditions",
    "deadline",
    "need_ids",
    "domains",
    "serves_residents",
    "status",
)
FEED_ID = "urn:citybase:opportunity-lists"


def _text(value: object) -> str:
    """A cell: lists joined by spaces; a leading formula sign neutralised, so that a spreadsheet
    opening the file never runs what a title says (CSV injection)."""
    text = " ".join(value) if isinstance(value, list) else "" if value is None else str(value)
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat()
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def openings_csv(listing: OpportunityListRead) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for opening in listing.openings:
        row = {
            "list_id": listing.id,
            "list_number": listing.number,
            "list_title": listing.title,
            "published_at": listing.published_at,
            "opening_id": opening.id,
            **opening.model_dump(include={"position", "title", "owner_department_id", "datasets"}),
            **opening.model_dump(include={"data_offered", "conditions", "need_ids", "domains", "status"}),
            "deadline": opening.deadline,
            "serves_residents": "yes" if opening.serves_residents else "no",
        }
        writer.writerow([_text(row[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def openings_atom(listings: Sequence[OpportunityListRead], *, self_url: str, list_url: str) -> bytes:
    """One Atom feed of the openings of every published list, newest list first.

    ``list_url`` is the JSON of one list with ``{list_id}`` in it; each entry links there."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}id").text = FEED_ID
    ET.SubElement(feed, f"{{{ATOM}}}title").text = "citybase opportunity lists"
    published = [moment for listing in listings if (moment := listing.published_at) is not None]
    updated = max(published, default=datetime(2026, 1, 1, tzinfo=UTC))
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = _stamp(updated)
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=self_url, type="application/atom+xml")
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = "citybase"
    for listing in listings:
        when = listing.published_at or listing.updated_at
        for opening in listing.openings:
            entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
            ET.SubElement(entry, f"{{{ATOM}}}id").text = f"urn:citybase:opening:{opening.id}"
            ET.SubElement(
                entry, f"{{{ATOM}}}title"
            ).text = f"No. {listing.number} {listing.title} · {opening.position}. {opening.title}"
            ET.SubElement(entry, f"{{{ATOM}}}updated").text = _stamp(max(when, opening.updated_at))
            ET.SubElement(entry, f"{{{ATOM}}}published").text = _stamp(when)
            ET.SubElement(
                entry,
                f"{{{ATOM}}}link",
                rel="alternate",
                href=list_url.format(list_id=listing.id),
                type="application/json",
            )
            ET.SubElement(entry, f"{{{ATOM}}}category", term=opening.owner_department_id)
            summary = ET.SubElement(entry, f"{{{ATOM}}}summary", type="text")
            summary.text = "\n".join(
                part
                for part in (
                    opening.description,
                    f"Data offered: {opening.data_offered}" if opening.data_offered else "",
                    f"Datasets: {', '.join(opening.datasets)}" if opening.datasets else "",
                    f"Conditions: {opening.conditions}" if opening.conditions else "",
                    f"Deadline: {_stamp(opening.deadline)}",
                )
                if part
            )
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")
