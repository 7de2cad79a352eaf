"""Feeds' read model of platform.catalog and its cursors, without a bus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common import catalog_events
from services.common.bus import Message
from services.feeds.cursor import Cursor, CursorCodec
from services.feeds.exceptions import InvalidCursor
from services.feeds.projection import FeedsCatalog
from tests.factories import feeds_grant_state, grant_record, next_grant_version


def message(record: object, offset: int = 0) -> Message:
    from services.common.bus import OutgoingRecord

    assert isinstance(record, OutgoingRecord)
    return Message(record.topic, 0, offset, record.key, record.value, record.headers, 0)


def test_a_grant_keeps_its_highest_version_and_its_policy_follows() -> None:
    catalog = FeedsCatalog()
    first = feeds_grant_state("sc-1", "transport.arrivals", fields=["stop_id", "delay_s"])
    second = next_grant_version(first, fields=["stop_id"])
    catalog.apply(message(grant_record(first), 0))
    before = catalog.policy(catalog.grant(first["id"]))  # type: ignore[arg-type]
    assert before.apply({"stop_id": "S1", "delay_s": 3, "x": 1}) == {"stop_id": "S1", "delay_s": 3}
    catalog.apply(message(grant_record(second), 1))
    catalog.apply(message(grant_record(first), 2))  # replayed late: ignored
    grant = catalog.grant(first["id"])
    assert grant is not None and grant.version == 2
    assert catalog.policy(grant).apply({"stop_id": "S1", "delay_s": 3}) == {"stop_id": "S1"}
    assert catalog.policy(grant) is catalog.policy(grant)  # compiled once per version


def test_effective_status_is_computed_with_the_clock() -> None:
    catalog = FeedsCatalog()
    now = datetime.now(UTC)
    payload = feeds_grant_state(
        "sc-1", "transport.arrivals", expires_at=(now + timedelta(minutes=1)).isoformat()
    )
    catalog.apply(message(grant_record(payload)))
    grant = catalog.grant(payload["id"])
    assert grant is not None
    assert grant.effective_status(now) == "active" and grant.refusal(now) is None
    later = now + timedelta(minutes=2)
    assert grant.effective_status(later) == "expired" and "expired" in (grant.refusal(later) or "")
    assert catalog.usable_grant("sc-1", "transport.arrivals", now) == grant
    assert catalog.usable_grant("sc-1", "transport.arrivals", later) is None
    revoked = next_grant_version(payload, status="revoked", expires_at=(now - timedelta(days=1)).isoformat())
    catalog.apply(message(grant_record(revoked), 1))
    assert catalog.grant(payload["id"]).effective_status(now) == "revoked"  # type: ignore[union-attr]


def test_malformed_grants_and_tombstones_do_not_stop_the_read_model(caplog: pytest.LogCaptureFixture) -> None:
    catalog = FeedsCatalog()
    bad = feeds_grant_state("sc-1", "transport.arrivals", expires_at=None)
    catalog.apply(message(catalog_events.catalog_record(catalog_events.GRANT, bad["id"], bad)))
    assert catalog.grant(bad["id"]) is None and catalog.skipped == 1
    assert "grant expires_at must be an RFC 3339 time, not None" in caplog.text
    good = feeds_grant_state("sc-1", "transport.arrivals")
    catalog.apply(message(grant_record(good), 1))
    tombstone = Message("platform.catalog", 0, 2, f"grant:{good['id']}".encode(), None, (), 0)
    catalog.apply(tombstone)
    assert catalog.grant(good["id"]) is None and catalog.grants_of("sc-1", "transport.arrivals") == []


def test_cursors_are_signed_and_bound_to_their_subscription() -> None:
    codec = CursorCodec(b"secret")
    text = codec.encode(Cursor("sub-a", 2, {0: 10, 2: 7}))
    assert codec.decode(text, "sub-a") == Cursor("sub-a", 2, {0: 10, 2: 7})
    with pytest.raises(InvalidCursor):
        codec.decode(text, "sub-b")
    with pytest.raises(InvalidCursor):
        CursorCodec(b"other secret").decode(text, "sub-a")
    with pytest.raises(InvalidCursor):
        codec.decode(text[:-3] + ("A" if text[-3] != "A" else "B") + text[-2:], "sub-a")
    for garbage in ["", "!!!", "a" * 9000]:
        with pytest.raises(InvalidCursor):
            codec.decode(garbage, "sub-a")
