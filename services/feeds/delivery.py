"""Reading and metering a batch, the same for every mode of delivery (long-poll, Server-Sent
Events, webhook):

1. the keys, the grant and its quota are checked (:class:`~services.feeds.access.DeliveryAccess`);
2. records are polled from the subscription's consumer group, checking the keys and the grant again
   every ``check_interval_s`` while waiting, so a revocation or a suspension stops a waiting
   delivery within a second;
3. the grant's *current* version is compiled to a policy (cached per version) and applied to each
   record, so a narrowed grant applies from the next batch;
4. the batch is metered: a usage event on ``platform.usage`` through feeds' outbox and the day's
   count of the grant, in one unit of work of its own (:meth:`Delivery.meter`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from services.common import db, usage_events
from services.common.bus import GroupRebalancing, Message
from services.common.clock import utcnow
from services.common.envelope import CloudEvent, encode_json, format_time
from services.common.i18n import N_, Sentence, reason_of
from services.common.metrics import observe_many
from services.common.outbox import Outbox
from services.common.policy import Policy, RowFilterError
from services.feeds.access import Credential, DeliveryAccess
from services.feeds.cursor import Cursor, CursorCodec
from services.feeds.exceptions import GrantNotActive, GroupNotReady
from services.feeds.metrics import FeedsMetrics
from services.feeds.models import QuotaUsage
from services.feeds.projection import FeedsCatalog, GrantState
from services.feeds.readers import Reader, SubscriptionReader
from services.feeds.settings import FeedsSettings
from services.feeds.subscriptions import SubscriptionView

log = logging.getLogger(__name__)

SOURCE = "/feeds"


@dataclass
class Batch:
    """Records of one delivery, already serialized, and the cursor after them."""

    subscription: SubscriptionView
    grant: GrantState
    mode: str
    chunks: list[bytes]
    """The delivered records' JSON, comma-separated, a chunk of records in each (see :data:`POLL_CHUNK`)."""
    records: int
    size: int
    """Bytes of the delivered records (their JSON)."""
    cursor: str
    offsets: dict[int, int]
    polled: int
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    """partition -> (first, last) offset of the delivered records."""
    delivered_at: datetime = field(default_factory=utcnow)

    def grant_ref(self) -> dict[str, Any]:
        return {"id": self.grant.id, "version": self.grant.version}

    def body(self) -> bytes:
        """The JSON answer of a long-poll (and the data of an SSE event, the body of a webhook)."""
        return b"".join(self.body_parts())

    def body_parts(self) -> list[bytes]:
        """:meth:`body` in pieces, to be joined with what goes around it in one copy."""
        head = encode_json({"subscription_id": self.subscription.id, "grant": self.grant_ref()})
        parts = [head[:-1], b',"records":[']
        for n, chunk in enumerate(self.chunks):
            if n:
                parts.append(b",")
            parts.append(chunk)
        parts += [b'],"cursor":', json.dumps(self.cursor).encode(), b"}"]
        return parts


POLL_CHUNK = 500
"""Records asked of the consumer at a time. A batch of thousands is read chunk by chunk, each
chunk turned into delivered entries (bytes, which the garbage collector does not track) before
the next is polled: a chunk's messages are freed young instead of thousands of them living
through collections, being promoted and, once enough were, making the collector walk every
long-lived object of the process (on the feeds bench, batches of 5,000 read at once spent about
a fifth of the long-poll's time in full collections, read in chunks about an eighth)."""

BUILDING_AT_ONCE = 4
"""Batches being read and turned into entries at once in the process. That is Python work, one
thread at a time under the GIL, so more at once would not deliver faster; but each batch being
built holds a chunk of kafka-python's records and of orjson's 4 KiB buffers, and open streams
tend to get their records at the same moment (on the feeds bench, 200 streams each receiving 500
records peaked 58 MiB lower). A delivery waits for its first record outside this bound."""


_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
"""A ``bytes.translate`` table: every ASCII digit becomes ``0``, every other byte a space."""
_LONG_NUMBER = b"0" * 19
"""Nineteen digits in a row (after :data:`_DIGITS_AS_ZEROS`): maybe an integer beyond 64 bits,
which orjson would read as a float. Such a record (rare; a long digit string inside a text
matches too) is read by :mod:`json`, which keeps every integer exact. A translate and a substring
search, both in C, find them several times faster than a regular expression."""


def delivered_entry(
    message: Message, dataset_id: str, apply: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> bytes | None:
    """One record as delivered (its JSON in a batch), or None when it is not delivered (not a
    JSON object, or kept from the scenario by the grant's row filter).

    orjson reads and writes the JSON (several times faster than :mod:`json`); a record orjson would
    read differently (NaN, a lone surrogate, an integer beyond 64 bits) goes through :mod:`json` as
    before, so what is delivered does not depend on it. A batch writes its entries a chunk at a time
    (:func:`delivered_item`, :func:`joined_entries`): the same bytes, one orjson call per chunk.
    """
    item = delivered_item(message, dataset_id, apply)
    return item if item is None or isinstance(item, bytes) else _encoded(item)


def delivered_item(
    message: Message, dataset_id: str, apply: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> dict[str, Any] | bytes | None:
    """What :func:`delivered_entry` delivers of ``message``, not yet written when orjson can write
    it: the entry as a dict (its JSON is orjson's), or its JSON already written by :mod:`json` (a
    record orjson would read differently), or None. The hot path of every delivery mode."""
    value = message.value
    if value is None:
        return None
    exact = _LONG_NUMBER not in value.translate(_DIGITS_AS_ZEROS)
    try:
        record = orjson.loads(value) if exact else json.loads(value)
    except ValueError:
        try:
            record = json.loads(value)
            exact = False
        except ValueError:
            log.warning("skipping a record of %s@%s that is not JSON", message.topic, message.offset)
            return None
    if not isinstance(record, dict):
        return None
    visible = apply(record)
    if visible is None:
        return None
    headers = dict(message.headers)  # the last of each name, as Message.header reads
    event_id = headers.get("ce_id")
    event_time = headers.get("ce_time")
    entry = {
        "id": event_id.decode() if event_id else f"{message.topic}/{message.partition}/{message.offset}",
        "dataset": dataset_id,
        "partition": message.partition,
        "offset": message.offset,
        "time": event_time.decode() if event_time else None,
        "data": visible,
    }
    return entry if exact else _written_by_json(entry)


def _encoded(entry: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(entry)
    except TypeError:  # a value orjson does not take
        return _written_by_json(entry)


def _written_by_json(entry: dict[str, Any]) -> bytes:
    try:
        return encode_json(entry)
    except UnicodeEncodeError:  # a lone surrogate, which UTF-8 cannot carry: escaped, as JSON allows
        return json.dumps(entry, separators=(",", ":"), default=str).encode()


def joined_entries(items: list[dict[str, Any] | bytes]) -> bytes:
    """The JSON of :func:`delivered_item`'s entries, comma-separated: what joining each one's
    :func:`delivered_entry` gives.

    Entries that orjson writes are written by one call, as a JSON array whose brackets are then
    cut (orjson writes an array as its items joined by commas): a call per entry costs a call and
    a 4 KiB buffer each (orjson hands every result out in one, however short), about a third of
    writing a chunk. A chunk with an entry orjson does not take is written entry by entry.
    """
    try:
        return orjson.dumps(items)[1:-1]
    except TypeError:  # an entry already written by json (bytes), or a value orjson does not take
        return b",".join([item if isinstance(item, bytes) else _encoded(item) for item in items])


class Delivery:
    """Reads, filters and meters batches; one per process, inside :class:`~services.feeds.service.Feeds`."""

    def __init__(
        self,
        *,
        access: DeliveryAccess,
        catalog: FeedsCatalog,
        cursors: CursorCodec,
        sessions: sessionmaker[Session],
        outbox: Outbox,
        metrics: FeedsMetrics,
        settings: FeedsSettings,
    ) -> None:
        self.access = access
        self.catalog = catalog
        self.cursors = cursors
        self.sessions = sessions
        self.outbox = outbox
        self.metrics = metrics
        self.settings = settings
        self._building = threading.BoundedSemaphore(BUILDING_AT_ONCE)

    def read_batch(
        self,
        subscription: SubscriptionView,
        reader: SubscriptionReader,
        *,
        max_records: int,
        wait_s: float,
        mode: str,
        credential: Credential | None,
        keep_waiting: Callable[[], bool] | None = None,
    ) -> Batch:
        """One batch for ``subscription`` from ``reader`` (see the module docstring); not metered yet.
        No session but the quota's short read.

        Raises the grant's refusal when it stops allowing delivery, also in the middle of a wait,
        and :class:`AccessWithdrawn` when the request's key (``credential``; None for the webhook
        pusher: any key of the scenario) or the scenario stops.
        """
        grant, remaining = self.access.authorize(subscription, credential)
        limit = max_records if remaining is None else max(1, min(max_records, remaining))
        deadline = time.monotonic() + wait_s
        interval = self.settings.check_interval_s
        while True:
            slice_s = max(0.0, min(interval, deadline - time.monotonic()))
            # Waiting takes one record: the rest is read while the batch is built (BUILDING_AT_ONCE).
            messages = reader.poll(slice_s, 1)
            if messages or time.monotonic() >= deadline or (keep_waiting is not None and not keep_waiting()):
                break
            grant = self.access.allowed_grant(subscription, credential)
        try:
            # The newest version of the grant, checked again: what applies is what holds now.
            grant = self.access.allowed_grant(subscription, credential)
            policy = self._policy(grant)
        except BaseException:
            unread(reader, messages)
            raise
        return self._build(subscription, reader, grant, policy, messages, mode, limit)

    def _policy(self, grant: GrantState) -> Policy:
        try:
            return self.catalog.policy(grant)
        except (RowFilterError, ValueError) as error:
            self.metrics.denied.labels("invalid_terms").inc()
            raise GrantNotActive(
                Sentence(
                    N_("grant %(id)s version %(version)s cannot be applied: %(error)s"),
                    id=grant.id,
                    version=grant.version,
                    error=reason_of(error),
                ),
                reason="invalid_terms",
                grant_id=grant.id,
            ) from error

    def _build(
        self,
        subscription: SubscriptionView,
        reader: SubscriptionReader,
        grant: GrantState,
        policy: Policy,
        messages: list[Message],
        mode: str,
        limit: int,
    ) -> Batch:
        """The batch of ``messages`` (polled first) and of what the reader has ready after them,
        chunk by chunk (see :data:`POLL_CHUNK`), up to ``limit`` records polled."""
        chunks: list[bytes] = []
        records = size = polled = 0
        ranges: dict[int, tuple[int, int]] = {}
        dataset = subscription.dataset_id
        apply = policy.apply
        now_ms = time.time() * 1000
        written_ms: list[int] = []
        with self._building:
            while messages:
                polled += len(messages)
                items: list[dict[str, Any] | bytes] = []
                for message in messages:
                    item = delivered_item(message, dataset, apply)
                    if item is None:
                        continue
                    items.append(item)
                    first, _last = ranges.get(message.partition, (message.offset, message.offset))
                    ranges[message.partition] = (first, message.offset)
                    written_ms.append(message.timestamp_ms)
                if items:
                    # Written as the chunk's bytes before the next chunk is polled (see POLL_CHUNK).
                    chunk = joined_entries(items)
                    chunks.append(chunk)
                    records += len(items)
                    size += len(chunk) - (len(items) - 1)  # the entries, without the commas
                if polled >= limit:
                    break
                messages = reader.poll(0.0, min(limit - polled, POLL_CHUNK))
        observe_many(
            self.metrics.latency.labels(mode), [max(0.0, now_ms - stamp) / 1000 for stamp in written_ms]
        )
        offsets = reader.cursor_offsets()
        cursor = self.cursors.encode(Cursor(subscription.id, subscription.reset_epoch, offsets))
        return Batch(subscription, grant, mode, chunks, records, size, cursor, offsets, polled, ranges)

    def meter(self, batch: Batch) -> None:
        """Count a delivered batch: the grant's day total and a usage event, in one unit of work of
        its own (opened from ``sessions`` and committed here)."""
        if not batch.records:
            return
        size = batch.size
        sub = batch.subscription
        self.metrics.records.labels(sub.dataset_id, batch.mode).inc(batch.records)
        self.metrics.bytes.labels(sub.dataset_id, batch.mode).inc(size)
        usage = {
            "scenario_id": sub.scenario_id,
            "subscription_id": sub.id,
            # Where the subscription's acknowledged positions are kept: quality reads its lag there
            # with the same function as feeds (Admin.lag), not from the offsets delivered.
            "consumer_group": sub.group_id,
            "grant_id": batch.grant.id,
            "grant_version": batch.grant.version,
            "dataset_id": sub.dataset_id,
            "purpose": batch.grant.data.get("purpose"),
            "records": batch.records,
            "bytes": size,
            "partitions": [
                {"partition": p, "first_offset": first, "last_offset": last}
                for p, (first, last) in sorted(batch.ranges.items())
            ],
            "delivered_at": format_time(batch.delivered_at),
            "mode": batch.mode,
        }
        event = CloudEvent(
            type=usage_events.USAGE, source=SOURCE, subject=sub.id, data=usage, time=batch.delivered_at
        )
        with db.unit_of_work(self.sessions) as session:
            add_usage(session, batch.grant.id, batch.delivered_at.strftime("%Y-%m-%d"), batch.records, size)
            self.outbox.add(session, event.to_record(usage_events.TOPIC, sub.scenario_id.encode()))


def join_partitions(reader: Reader, timeout_s: float, want: set[int] | None = None) -> None:
    """Make a fresh reader a member holding partitions (``want``, if it can get them in time),
    without delivering what it polled."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assigned = reader.assigned()
        if assigned and (want is None or want <= assigned):
            return
        unread(reader, reader.poll(0.05, 1))


def commit_rejoining(
    reader: SubscriptionReader, offsets: Mapping[int, int], timeout_s: float
) -> dict[int, int]:
    """Commit ``offsets`` of the partitions ``reader`` holds; what was committed.

    Refused because another reader joined or left the group since this one last polled (feeds
    replicas and streams of one subscription come and go), the reader polls, putting back what it
    reads, until it takes part in the group's new round, and commits what it then holds. A group
    that does not settle within ``timeout_s`` is a 503 the client retries.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return reader.commit(offsets)
        except GroupRebalancing as error:
            if time.monotonic() >= deadline:
                raise GroupNotReady(
                    Sentence(
                        N_(
                            "the subscription's consumer group is rebalancing between its readers; nothing was acknowledged; retry shortly"
                        )
                    ),
                    retry_after_s=1,
                ) from error
            unread(reader, reader.poll(0.1, 1))


def unread(reader: SubscriptionReader, messages: list[Message]) -> None:
    """Put polled records back: the next poll returns them again."""
    firsts: dict[int, int] = {}
    for message in messages:
        firsts.setdefault(message.partition, message.offset)
    if firsts:
        reader.seek(firsts)


def add_usage(session: Session, grant_id: str, day: str, records: int, size: int) -> None:
    """Add to the grant's day total atomically (an upsert: replicas add concurrently)."""
    table = cast(sa.Table, QuotaUsage.__table__)
    dialect = session.get_bind().dialect.name
    values = {"grant_id": grant_id, "day": day, "records": records, "bytes": size}
    update = {"records": table.c.records + records, "bytes": table.c.bytes + size}
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).values(**values)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).values(**values)
    else:  # pragma: no cover - citybase runs on SQLite and PostgreSQL
        raise RuntimeError(f"unsupported database {dialect}")
    session.execute(statement.on_conflict_do_update(index_elements=["grant_id", "day"], set_=update))
