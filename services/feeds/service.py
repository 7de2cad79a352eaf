"""Feeds' business rules: who may subscribe, what a batch holds, when delivery stops, what is metered.

Every mode of delivery (long-poll, Server-Sent Events, webhook) reads through :meth:`Feeds.read_batch`:

1. the keys and principals behind the delivery are checked in the key ring (the scenario not
   suspended; the request's key not revoked, or for a webhook, some key of the scenario left), the
   subscription's grant is looked up in the read model and checked against the clock (active,
   valid now, not expired, not revoked, not suspended) and its daily quota against feeds' table
   (shared by replicas): otherwise a 401, 403 or 429 problem that says why;
2. records are polled from the subscription's consumer group, checking the keys and the grant again
   every ``check_interval_s`` while waiting, so a revocation or a suspension stops a waiting
   delivery within a second;
3. the grant's *current* version is compiled to a policy (cached per version) and applied to each
   record, so a narrowed grant applies from the next batch;
4. the batch is metered: a usage event on ``platform.usage`` through feeds' outbox and the day's
   count of the grant, in one transaction.

Positions only move on acknowledgement (:meth:`Feeds.ack`, a stream resumed with ``Last-Event-ID``, the webhook pusher
once a batch was handed over): at-least-once, with each record's CloudEvents id for de-duplication.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from services.common import db, usage_events
from services.common.auth import Principal, PrincipalKind
from services.common.bus import Bus, BusError, Message, TopicSpec, UnknownTopic
from services.common.clock import aware, utcnow
from services.common.envelope import CloudEvent, encode_json, format_time
from services.common.metrics import observe_many
from services.common.outbox import Outbox
from services.common.policy import Policy, RowFilterError
from services.feeds.cursor import Cursor, CursorCodec
from services.feeds.exceptions import (
    AccessWithdrawn,
    DatasetNotFound,
    GrantNotActive,
    NoGrant,
    NotYourSubscription,
    QuotaExceeded,
    ReadersExhausted,
    StaleCursor,
    SubscriptionNotFound,
    SubscriptionPaused,
    TooManyStreams,
)
from services.feeds.metrics import FeedsMetrics
from services.feeds.models import QuotaUsage, Replay, Subscription, WebhookDelivery
from services.feeds.projection import FeedsCatalog, GrantState
from services.feeds.readers import (
    Reader,
    ReaderPool,
    StartPosition,
    check_offsets,
    group_id_of,
    open_positioned,
)
from services.feeds.schemas import (
    GrantRef,
    PartitionPosition,
    Position,
    StartOffsets,
    StartTimestamp,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionDetail,
    SubscriptionRead,
    WebhookDeliveryRead,
)
from services.feeds.settings import FeedsSettings
from services.feeds.webhook_targets import WebhookTargets

log = logging.getLogger(__name__)

SOURCE = "/feeds"

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class SubscriptionView:
    """A subscription as a delivery sees it (a detached copy of the row)."""

    id: str
    scenario_id: str
    dataset_id: str
    topic: str
    group_id: str
    grant_id: str
    status: str
    status_reason: str | None
    reset_epoch: int
    webhook_url: str | None
    webhook_secret: str | None
    webhook_failures: int

    @classmethod
    def of(cls, row: Subscription) -> SubscriptionView:
        return cls(
            id=row.id,
            scenario_id=row.scenario_id,
            dataset_id=row.dataset_id,
            topic=row.topic,
            group_id=row.group_id,
            grant_id=row.grant_id,
            status=row.status,
            status_reason=row.status_reason,
            reset_epoch=row.reset_epoch,
            webhook_url=row.webhook_url,
            webhook_secret=row.webhook_secret,
            webhook_failures=row.webhook_failures,
        )


@dataclass(frozen=True, slots=True)
class Credential:
    """The key a delivery was asked for with. A delivery that outlives its request (a long-poll
    waiting for records, an open stream) re-checks it before every batch: revoking the key ends
    it, as suspending the principal does. ``key_prefix`` None: the caller's key is not known (only
    the principal is checked)."""

    principal_id: str
    key_prefix: str | None


class StreamSlots:
    """How many streams are open, in the process and per scenario: one scenario may not take every
    stream of the process from the others."""

    def __init__(self, total: int, per_scenario: int) -> None:
        self.total = total
        self.per_scenario = per_scenario
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, scenario_id: str) -> None:
        """A slot for a stream of ``scenario_id``, or the problem saying which limit is reached."""
        with self._lock:
            held = self._open.get(scenario_id, 0)
            if held >= self.per_scenario:
                raise TooManyStreams(
                    f"scenario {scenario_id!r} has {held} streams open in this process, the most one "
                    "scenario may; close one or retry later",
                    retry_after_s=5,
                    limit=self.per_scenario,
                )
            if sum(self._open.values()) >= self.total:
                raise ReadersExhausted(
                    f"{self.total} streams are open in this process; retry shortly", retry_after_s=2
                )
            self._open[scenario_id] = held + 1

    def give_back(self, scenario_id: str) -> None:
        with self._lock:
            held = self._open.get(scenario_id, 0) - 1
            if held > 0:
                self._open[scenario_id] = held
            else:
                self._open.pop(scenario_id, None)


@dataclass
class Batch:
    """Records of one delivery, already serialized, and the cursor after them."""

    subscription: SubscriptionView
    grant: GrantState
    mode: str
    entries: list[bytes]
    cursor: str
    offsets: dict[int, int]
    polled: int
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    """partition -> (first, last) offset of the delivered records."""
    delivered_at: datetime = field(default_factory=utcnow)

    @property
    def records(self) -> int:
        return len(self.entries)

    @property
    def size(self) -> int:
        """Bytes of the delivered records (their JSON)."""
        return sum(len(entry) for entry in self.entries)

    def grant_ref(self) -> dict[str, Any]:
        return {"id": self.grant.id, "version": self.grant.version}

    def body(self) -> bytes:
        """The JSON answer of a long-poll (and the data of an SSE event, the body of a webhook)."""
        head = encode_json({"subscription_id": self.subscription.id, "grant": self.grant_ref()})
        return (
            head[:-1]
            + b',"records":['
            + b",".join(self.entries)
            + b'],"cursor":'
            + json.dumps(self.cursor).encode()
            + b"}"
        )


_LONG_NUMBER = re.compile(rb"\d{19}")
"""Nineteen digits in a row: maybe an integer beyond 64 bits, which orjson would read as a float.
Such a record (rare; a long digit string inside a text matches too) is read by :mod:`json`, which
keeps every integer exact."""


def delivered_entry(
    message: Message, dataset_id: str, apply: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> bytes | None:
    """One record as delivered (its JSON in a batch), or None when it is not delivered (not a
    JSON object, or kept from the scenario by the grant's row filter).

    The hot path of every delivery mode: orjson reads and writes the JSON (several times faster
    than :mod:`json`); a record orjson would read differently (NaN, a lone surrogate, an integer
    beyond 64 bits) goes through :mod:`json` as before, so what is delivered does not depend on it.
    """
    value = message.value
    if value is None:
        return None
    exact = _LONG_NUMBER.search(value) is None
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
    event_id = event_time = None
    for name, header in message.headers:  # the last of each, as Message.header reads
        if name == "ce_id":
            event_id = header
        elif name == "ce_time":
            event_time = header
    entry = {
        "id": event_id.decode() if event_id else f"{message.topic}/{message.partition}/{message.offset}",
        "dataset": dataset_id,
        "partition": message.partition,
        "offset": message.offset,
        "time": event_time.decode() if event_time else None,
        "data": visible,
    }
    if exact:
        try:
            return orjson.dumps(entry)
        except TypeError:  # a value orjson does not take
            pass
    try:
        return encode_json(entry)
    except UnicodeEncodeError:  # a lone surrogate, which UTF-8 cannot carry: escaped, as JSON allows
        return json.dumps(entry, separators=(",", ":"), default=str).encode()


def _position(value: Position) -> StartPosition:
    if isinstance(value, StartOffsets):
        return StartPosition("offsets", offsets=dict(value.offsets))
    if isinstance(value, StartTimestamp):
        return StartPosition("timestamp", timestamp_ms=int(value.timestamp.timestamp() * 1000))
    return StartPosition(value)


def _refusal_code(grant: GrantState | None, now: datetime) -> str:
    return "no_grant" if grant is None else grant.effective_status(now)


class Feeds:
    """The delivery rules, with their collaborators; one per process, built by the lifespan."""

    def __init__(
        self,
        *,
        catalog: FeedsCatalog,
        bus: Bus,
        sessions: sessionmaker[Session],
        outbox: Outbox,
        pool: ReaderPool,
        metrics: FeedsMetrics,
        settings: FeedsSettings,
        clock: Clock = utcnow,
        webhook_targets: WebhookTargets | None = None,
    ) -> None:
        self.catalog = catalog
        self.bus = bus
        self.sessions = sessions
        self.outbox = outbox
        self.pool = pool
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.cursors = CursorCodec(settings.signing_key())
        self.webhook_targets = webhook_targets or WebhookTargets.of(settings)
        self.streams = StreamSlots(settings.max_streams, settings.max_streams_per_scenario)

    # --- subscriptions ------------------------------------------------------------------------

    def create_subscription(self, principal: Principal, payload: SubscriptionCreate) -> SubscriptionCreated:
        """A new subscription of the caller's scenario, positioned at ``start`` before it is stored.

        Needs a grant of the scenario for the dataset that allows delivery now (403 otherwise,
        saying why). The subscription's group is positioned (committed) at once, so that ``latest``
        means "from now", whichever reader reads first and however much later.
        """
        dataset = self.catalog.dataset(payload.dataset)
        if dataset is None:
            raise DatasetNotFound(f"no dataset {payload.dataset!r}", path="/dataset")
        grant = self._grant_for(principal.id, payload.dataset, None)
        webhook_url = self.webhook_targets.check_url(payload.webhook.url) if payload.webhook else None
        start = _position(payload.start)
        self._ensure_topic(dataset.records_topic)
        if start.kind == "offsets":
            check_offsets(self.bus, dataset.records_topic, start.offsets or {})
        subscription_id = "sub-" + secrets.token_hex(11)
        group_id = group_id_of(subscription_id)
        reader, _positions = open_positioned(
            self.bus,
            group_id=group_id,
            topic=dataset.records_topic,
            epoch=0,
            target=start,
            client_id="citybase-feeds",
            join_timeout_s=self.settings.join_timeout_s,
        )
        secret = "whsec_" + secrets.token_urlsafe(32) if webhook_url else None
        try:
            with db.unit_of_work(self.sessions) as session:
                row = Subscription(
                    id=subscription_id,
                    scenario_id=principal.id,
                    dataset_id=dataset.id,
                    topic=dataset.records_topic,
                    group_id=group_id,
                    grant_id=grant.id,
                    status="active",
                    start=start.to_value(),
                    reset_epoch=0,
                    webhook_url=webhook_url,
                    webhook_secret=secret,
                    webhook_failures=0,
                )
                session.add(row)
                session.flush()
                detail = self._detail(session, row, lag=False)
        except BaseException:
            reader.close()
            raise
        # The positions are committed: whichever reader comes first (a long-poll, a stream, the
        # webhook pusher, here or on another replica) starts there and holds the partitions.
        reader.close()
        return SubscriptionCreated(**detail.model_dump(), webhook_secret=secret)

    def _ensure_topic(self, topic: str) -> None:
        try:
            self.bus.admin().partitions_for(topic)
        except UnknownTopic:
            self.bus.admin().ensure_topic(TopicSpec(topic, partitions=self.settings.topic_partitions))

    def own_subscription(self, session: Session, principal: Principal, subscription_id: str) -> Subscription:
        """The subscription, if the caller's: 404 when unknown, 403 when another scenario's."""
        row = session.get(Subscription, subscription_id)
        if row is None:
            raise SubscriptionNotFound(f"no subscription {subscription_id!r}")
        if row.scenario_id != principal.id and principal.kind is not PrincipalKind.admin:
            raise NotYourSubscription(f"subscription {subscription_id!r} is not one of yours")
        return row

    def list_subscriptions(self, session: Session, principal: Principal) -> list[SubscriptionRead]:
        rows = session.scalars(
            sa.select(Subscription)
            .where(Subscription.scenario_id == principal.id)
            .order_by(Subscription.created_at, Subscription.id)
        ).all()
        return [self._read(row) for row in rows]

    def get_subscription(
        self, session: Session, principal: Principal, subscription_id: str
    ) -> SubscriptionDetail:
        return self._detail(session, self.own_subscription(session, principal, subscription_id))

    def set_status(
        self, session: Session, principal: Principal, subscription_id: str, status: str
    ) -> SubscriptionDetail:
        """Pause or resume. Resuming clears a webhook's failure count (it is tried again at once)."""
        row = self.own_subscription(session, principal, subscription_id)
        if status == "active":
            self._grant_for(row.scenario_id, row.dataset_id, row.grant_id)
            row.webhook_failures = 0
            row.status_reason = None
        else:
            row.status_reason = "paused by the scenario"
        row.status = status
        session.flush()
        return self._detail(session, row)

    def delete_subscription(self, session: Session, principal: Principal, subscription_id: str) -> None:
        """Forget the subscription and its group (its committed positions)."""
        row = self.own_subscription(session, principal, subscription_id)
        group_id = row.group_id
        session.delete(row)
        session.flush()
        self.pool.discard(subscription_id)

        def drop_group() -> None:
            try:
                self.bus.admin().delete_group(group_id)
            except BusError as error:  # a reader elsewhere is still a member: it leaves, the group idles
                log.info("group %s not deleted now: %s", group_id, error)

        db.after_commit(session, drop_group)

    def _read(self, row: Subscription) -> SubscriptionRead:
        return SubscriptionRead(
            id=row.id,
            dataset=row.dataset_id,
            scenario_id=row.scenario_id,
            grant_id=row.grant_id,
            status="paused" if row.status == "paused" else "active",
            status_reason=row.status_reason,
            mode="webhook" if row.webhook_url else "pull",
            webhook_url=row.webhook_url,
            start=row.start,
            replays=row.reset_epoch,
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
        )

    def _detail(self, session: Session, row: Subscription, *, lag: bool = True) -> SubscriptionDetail:
        read = self._read(row)
        grant = self._current_grant(row.scenario_id, row.dataset_id, row.grant_id)
        grant_ref = (
            GrantRef(
                id=grant.id,
                version=grant.version,
                status=grant.effective_status(self.clock()),
                expires_at=grant.expires_at,
            )
            if grant is not None
            else None
        )
        positions: list[PartitionPosition] = []
        total: int | None = None
        try:
            admin = self.bus.admin()
            committed = admin.committed_offsets(row.group_id, row.topic)
            beginning = admin.beginning_offsets(row.topic)
            for partition, end in sorted(admin.end_offsets(row.topic).items()):
                offset = next((o for tp, o in committed.items() if tp.partition == partition), None)
                positions.append(
                    PartitionPosition(
                        partition=partition,
                        committed=offset,
                        end=end,
                        lag=max(0, end - (offset if offset is not None else beginning.get(partition, 0))),
                    )
                )
            total = sum(p.lag for p in positions)
        except BusError as error:
            if lag:
                log.warning("positions of %s unavailable: %s", row.id, error)
        return SubscriptionDetail(**read.model_dump(), grant=grant_ref, positions=positions, lag=total)

    def deliveries(
        self, session: Session, principal: Principal, subscription_id: str, limit: int
    ) -> list[WebhookDeliveryRead]:
        self.own_subscription(session, principal, subscription_id)
        rows = session.scalars(
            sa.select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == subscription_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        ).all()
        return [
            WebhookDeliveryRead(
                id=r.id,
                attempted_at=aware(r.attempted_at),
                attempt=r.attempt,
                outcome="delivered" if r.outcome == "delivered" else "failed",
                http_status=r.http_status,
                error=r.error,
                records=r.records,
                cursor=r.cursor,
                duration_ms=r.duration_ms,
            )
            for r in rows
        ]

    # --- grants and quota -----------------------------------------------------------------------

    def _current_grant(self, scenario_id: str, dataset_id: str, grant_id: str | None) -> GrantState | None:
        now = self.clock()
        usable = self.catalog.usable_grant(scenario_id, dataset_id, now)
        if usable is not None:
            return usable
        known = self.catalog.grant(grant_id) if grant_id else None
        if known is not None:
            return known
        grants = self.catalog.grants_of(scenario_id, dataset_id)
        return max(grants, key=lambda g: (g.data.get("updated_at") or "", g.version), default=None)

    def _grant_for(self, scenario_id: str, dataset_id: str, grant_id: str | None) -> GrantState:
        """The grant that allows delivery now, or the problem that says why there is none."""
        now = self.clock()
        usable = self.catalog.usable_grant(scenario_id, dataset_id, now)
        if usable is not None:
            return usable
        grant = self._current_grant(scenario_id, dataset_id, grant_id)
        reason = _refusal_code(grant, now)
        self.metrics.denied.labels(reason).inc()
        if grant is None:
            raise NoGrant(
                f"scenario {scenario_id!r} has no grant for dataset {dataset_id!r}; file an access request",
                reason=reason,
            )
        raise GrantNotActive(
            grant.refusal(now), reason=reason, grant_id=grant.id, grant_version=grant.version
        )

    def check_access(self, subscription: SubscriptionView, credential: Credential | None) -> None:
        """Refuse delivery (401 access-withdrawn) once the keys or the principals behind it stopped:
        the subscription's scenario is suspended; the key of the request was revoked (or its
        principal suspended); for the webhook pusher (``credential`` None), every key of the
        scenario was revoked. The key ring follows platform.catalog, so this holds within a
        second of the catalog's change, like a grant's revocation."""
        keyring = self.catalog.keyring
        scenario = keyring.principal(subscription.scenario_id)
        problem: AccessWithdrawn | None = None
        if scenario is None or not scenario.active:
            problem = AccessWithdrawn(
                f"scenario {subscription.scenario_id!r} is suspended; nothing is delivered to it",
                reason="suspended",
            )
        elif credential is None:
            if not keyring.has_live_key(subscription.scenario_id):
                problem = AccessWithdrawn(
                    f"every API key of scenario {subscription.scenario_id!r} is revoked; "
                    "the webhook is held until the scenario has a key again",
                    reason="keys_revoked",
                )
        else:
            caller = keyring.principal(credential.principal_id)
            if caller is None or not caller.active:
                problem = AccessWithdrawn(
                    f"principal {credential.principal_id!r} is suspended", reason="suspended"
                )
            elif credential.key_prefix is not None and not keyring.key_live(
                credential.key_prefix, credential.principal_id
            ):
                problem = AccessWithdrawn(
                    "the API key this delivery was asked with is revoked", reason="key_revoked"
                )
        if problem is not None:
            self.metrics.denied.labels(problem.extensions["reason"]).inc()
            raise problem

    def allowed_grant(self, subscription: SubscriptionView, credential: Credential | None) -> GrantState:
        """The grant a batch is delivered under now, once the keys and principals behind the
        delivery are checked (see :meth:`check_access`)."""
        self.check_access(subscription, credential)
        return self._grant_for(subscription.scenario_id, subscription.dataset_id, subscription.grant_id)

    def authorize(
        self, subscription: SubscriptionView, credential: Credential | None
    ) -> tuple[GrantState, int | None]:
        """The grant for a batch now and how many records its quota still allows today (None: no quota)."""
        if subscription.status == "paused":
            self.metrics.denied.labels("paused").inc()
            raise SubscriptionPaused(
                f"subscription {subscription.id} is paused"
                + (f": {subscription.status_reason}" if subscription.status_reason else ""),
                reason="paused",
            )
        grant = self.allowed_grant(subscription, credential)
        if grant.records_per_day is None:
            return grant, None
        now = self.clock()
        day = now.strftime("%Y-%m-%d")
        with self.sessions() as session:
            used = session.scalar(
                sa.select(QuotaUsage.records).where(QuotaUsage.grant_id == grant.id, QuotaUsage.day == day)
            )
        remaining = grant.records_per_day - int(used or 0)
        if remaining <= 0:
            self.metrics.denied.labels("quota").inc()
            midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
            raise QuotaExceeded(
                f"grant {grant.id} allows {grant.records_per_day} records a day; today's are delivered",
                retry_after_s=max(1, int((midnight - now).total_seconds())),
                reason="quota",
                grant_id=grant.id,
            )
        return grant, remaining

    def load(self, subscription_id: str) -> SubscriptionView:
        with self.sessions() as session:
            row = session.get(Subscription, subscription_id)
            if row is None:
                raise SubscriptionNotFound(f"no subscription {subscription_id!r}")
            return SubscriptionView.of(row)

    def load_own(self, principal: Principal, subscription_id: str) -> SubscriptionView:
        with self.sessions() as session:
            return SubscriptionView.of(self.own_subscription(session, principal, subscription_id))

    # --- reading a batch ---------------------------------------------------------------------

    def read_batch(
        self,
        subscription: SubscriptionView,
        reader: Reader,
        *,
        max_records: int,
        wait_s: float,
        mode: str,
        credential: Credential | None,
        keep_waiting: Callable[[], bool] | None = None,
    ) -> Batch:
        """One batch for ``subscription`` from ``reader`` (see the module docstring); not metered yet.

        Raises the grant's refusal when it stops allowing delivery, also in the middle of a wait,
        and :class:`AccessWithdrawn` when the request's key (``credential``; None for the webhook
        pusher: any key of the scenario) or the scenario stops.
        """
        grant, remaining = self.authorize(subscription, credential)
        limit = max_records if remaining is None else max(1, min(max_records, remaining))
        deadline = time.monotonic() + wait_s
        interval = self.settings.check_interval_s
        while True:
            slice_s = max(0.0, min(interval, deadline - time.monotonic()))
            messages = reader.poll(slice_s, limit)
            if messages or time.monotonic() >= deadline or (keep_waiting is not None and not keep_waiting()):
                break
            grant = self.allowed_grant(subscription, credential)
        try:
            # The newest version of the grant, checked again: what applies is what holds now.
            grant = self.allowed_grant(subscription, credential)
            policy = self._policy(grant)
        except BaseException:
            _unread(reader, messages)
            raise
        return self._build(subscription, reader, grant, policy, messages, mode)

    def _policy(self, grant: GrantState) -> Policy:
        try:
            return self.catalog.policy(grant)
        except (RowFilterError, ValueError) as error:
            self.metrics.denied.labels("invalid_terms").inc()
            raise GrantNotActive(
                f"grant {grant.id} version {grant.version} cannot be applied: {error}",
                reason="invalid_terms",
                grant_id=grant.id,
            ) from error

    def _build(
        self,
        subscription: SubscriptionView,
        reader: Reader,
        grant: GrantState,
        policy: Policy,
        messages: list[Message],
        mode: str,
    ) -> Batch:
        entries: list[bytes] = []
        ranges: dict[int, tuple[int, int]] = {}
        dataset = subscription.dataset_id
        apply = policy.apply
        now_ms = time.time() * 1000
        written_ms: list[int] = []
        for message in messages:
            entry = delivered_entry(message, dataset, apply)
            if entry is None:
                continue
            entries.append(entry)
            first, _last = ranges.get(message.partition, (message.offset, message.offset))
            ranges[message.partition] = (first, message.offset)
            written_ms.append(message.timestamp_ms)
        observe_many(
            self.metrics.latency.labels(mode), [max(0.0, now_ms - stamp) / 1000 for stamp in written_ms]
        )
        offsets = reader.cursor_offsets()
        cursor = self.cursors.encode(Cursor(subscription.id, subscription.reset_epoch, offsets))
        return Batch(subscription, grant, mode, entries, cursor, offsets, len(messages), ranges)

    def meter(self, batch: Batch) -> None:
        """Count a delivered batch: the grant's day total and a usage event, in one transaction."""
        if not batch.entries:
            return
        size = batch.size
        sub = batch.subscription
        self.metrics.records.labels(sub.dataset_id, batch.mode).inc(batch.records)
        self.metrics.bytes.labels(sub.dataset_id, batch.mode).inc(size)
        usage = {
            "scenario_id": sub.scenario_id,
            "subscription_id": sub.id,
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
            _add_usage(session, batch.grant.id, batch.delivered_at.strftime("%Y-%m-%d"), batch.records, size)
            self.outbox.add(session, event.to_record(usage_events.TOPIC, sub.scenario_id.encode()))

    # --- long-poll --------------------------------------------------------------------------

    def poll(
        self,
        principal: Principal,
        subscription_id: str,
        *,
        max_records: int,
        wait_s: float,
        credential: Credential | None = None,
    ) -> Batch:
        """A long-poll: up to ``max_records`` records, waiting up to ``wait_s`` for the first."""
        subscription = self.load_own(principal, subscription_id)
        credential = credential or Credential(principal.id, None)
        with self.pool.lease(
            subscription.id, subscription.group_id, subscription.topic, subscription.reset_epoch
        ) as reader:
            batch = self.read_batch(
                subscription,
                reader,
                max_records=max_records,
                wait_s=wait_s,
                mode="poll",
                credential=credential,
            )
        self.meter(batch)
        return batch

    def ack(self, principal: Principal, subscription_id: str, cursor_text: str) -> dict[int, int]:
        """Commit the subscription's positions up to ``cursor`` (records before it are done)."""
        subscription = self.load_own(principal, subscription_id)
        cursor = self.cursors.decode(cursor_text, subscription.id)
        if cursor.epoch != subscription.reset_epoch:
            raise StaleCursor(
                "the subscription was replayed after this cursor was issued; read on from the replay",
                path="/cursor",
            )
        if not cursor.offsets:
            return {}
        with self.pool.lease(
            subscription.id, subscription.group_id, subscription.topic, subscription.reset_epoch
        ) as reader:
            _join(reader, self.settings.join_timeout_s)
            committed = reader.commit(cursor.offsets)
            # A cursor behind what this reader delivered since (a client resuming from the last
            # cursor it kept, after a crash): what follows it must come again.
            positions = reader.cursor_offsets()
            behind = {p: o for p, o in committed.items() if positions.get(p, o) > o}
            if behind:
                reader.seek(behind)
            return committed

    # --- replay -----------------------------------------------------------------------------

    def replay(self, principal: Principal, subscription_id: str, to: Position) -> tuple[dict[int, int], int]:
        """Move the subscription to offsets or a time (within retention); recorded and announced.

        The replay raises the subscription's epoch: readers of the old epoch (here or on other
        replicas) leave and re-join at the new positions, and older cursors are refused.
        """
        subscription = self.load_own(principal, subscription_id)
        target = _position(to)
        if target.kind == "offsets":
            check_offsets(self.bus, subscription.topic, target.offsets or {})
        epoch = subscription.reset_epoch + 1
        with db.unit_of_work(self.sessions) as session:
            row = self.own_subscription(session, principal, subscription_id)
            row.reset_epoch = epoch
        self.pool.discard(subscription.id)
        reader, positions = open_positioned(
            self.bus,
            group_id=subscription.group_id,
            topic=subscription.topic,
            epoch=epoch,
            target=target,
            client_id="citybase-feeds",
            join_timeout_s=self.settings.join_timeout_s,
        )
        reader.close()
        record = {
            "subscription_id": subscription.id,
            "scenario_id": subscription.scenario_id,
            "dataset_id": subscription.dataset_id,
            "principal_id": principal.id,
            "target": target.to_value(),
            "positions": {str(p): o for p, o in sorted(positions.items())},
            "epoch": epoch,
            "replayed_at": format_time(self.clock()),
        }
        event = CloudEvent(type=usage_events.REPLAY, source=SOURCE, subject=subscription.id, data=record)
        with db.unit_of_work(self.sessions) as session:
            session.add(
                Replay(
                    subscription_id=subscription.id,
                    principal_id=principal.id,
                    target=target.to_value(),
                    positions=record["positions"],
                    epoch=epoch,
                )
            )
            self.outbox.add(session, event.to_record(usage_events.TOPIC, subscription.scenario_id.encode()))
        return positions, epoch

    # --- Server-Sent Events -----------------------------------------------------------------

    def open_stream(
        self,
        principal: Principal,
        subscription_id: str,
        last_event_id: str | None,
        credential: Credential | None = None,
    ) -> Stream:
        """A stream of the subscription: its own group member, resumed after ``last_event_id``.

        At most ``max_streams`` in the process and ``max_streams_per_scenario`` of one scenario
        (429 too-many-streams beyond, naming the limit)."""
        subscription = self.load_own(principal, subscription_id)
        credential = credential or Credential(principal.id, None)
        resume: Cursor | None = None
        if last_event_id:
            resume = self.cursors.decode(last_event_id, subscription.id)
            if resume.epoch != subscription.reset_epoch:
                resume = None  # replayed since: read on from the replay's positions
        self.authorize(subscription, credential)
        scenario_id = subscription.scenario_id
        self.streams.take(scenario_id)

        def give_back() -> None:
            self.streams.give_back(scenario_id)

        # A long-poll reader of this subscription idling in this process would keep partitions
        # from the stream until it times out: a client switching to a stream releases it.
        self.pool.discard(subscription.id)
        try:
            reader = Reader(
                self.bus,
                group_id=subscription.group_id,
                topic=subscription.topic,
                epoch=subscription.reset_epoch,
                client_id="citybase-feeds-sse",
            )
        except BaseException:
            give_back()
            raise
        try:
            if resume is not None and resume.offsets:
                # The client's previous stream may still hold the partitions for a moment (until
                # feeds notices it left): wait a little for them, so the resumption is exact.
                _join(reader, min(self.settings.join_timeout_s, 5.0), want=set(resume.offsets))
                reader.seek(resume.offsets)
                reader.commit(resume.offsets)
        except BaseException:
            reader.close()
            give_back()
            raise
        return Stream(self, subscription, reader, credential=credential, on_close=give_back)


def _join(reader: Reader, timeout_s: float, want: set[int] | None = None) -> None:
    """Make a fresh reader a member holding partitions (``want``, if it can get them in time),
    without delivering what it polled."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assigned = reader.assigned()
        if assigned and (want is None or want <= assigned):
            return
        _unread(reader, reader.poll(0.05, 1))


def _unread(reader: Reader, messages: list[Message]) -> None:
    """Put polled records back: the next poll returns them again."""
    firsts: dict[int, int] = {}
    for message in messages:
        firsts.setdefault(message.partition, message.offset)
    if firsts:
        reader.seek(firsts)


def _add_usage(session: Session, grant_id: str, day: str, records: int, size: int) -> None:
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


_DATABASE_DOWN = (sa_exc.OperationalError, sa_exc.TimeoutError)
"""What the apps answer with 503 "the database is unavailable" (services.common.app)."""
_DATABASE_RETRY_S = 0.5


@dataclass
class StreamEvent:
    text: bytes
    batch: Batch | None = None
    final: bool = False


class Stream:
    """One open SSE stream: its own reader; ends when the grant, the subscription, the key it was
    opened with or its scenario stops it.

    A stream commits nothing by itself: a batch written to a connection the client has already
    left would otherwise count as received. The client acknowledges with ``POST .../ack`` (an
    event's id is its cursor) or by reconnecting with ``Last-Event-ID``, which commits that
    cursor and reads on after it.
    """

    def __init__(
        self,
        feeds: Feeds,
        subscription: SubscriptionView,
        reader: Reader,
        credential: Credential | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.feeds = feeds
        self.subscription = subscription
        self.reader = reader
        self.credential = credential or Credential(subscription.scenario_id, None)
        self._on_close = on_close
        self._checked = time.monotonic()
        self._last_event = time.monotonic()
        self.closed = False

    def next_event(self) -> StreamEvent:
        """The next event: a batch, a keep-alive comment, the final ``end`` event saying why, or
        (after about a second with nothing to say) an empty event, so that the caller can look
        whether the client is still there."""
        settings = self.feeds.settings
        try:
            self._recheck()
            batch = self.feeds.read_batch(
                self.subscription,
                self.reader,
                max_records=settings.sse_batch,
                wait_s=settings.subscription_recheck_s,
                mode="sse",
                credential=self.credential,
            )
        except (
            AccessWithdrawn,
            GrantNotActive,
            NoGrant,
            QuotaExceeded,
            SubscriptionPaused,
            SubscriptionNotFound,
            StaleCursor,
        ) as problem:
            return StreamEvent(b"event: end\ndata: " + encode_json(problem.body()) + b"\n\n", final=True)
        except _DATABASE_DOWN:
            # Busy or unreachable (every connection of the pool taken by other streams, say): the
            # stream waits and tries again rather than breaking the response in the middle.
            log.warning("stream of %s: the database is unavailable; trying again", self.subscription.id)
            time.sleep(_DATABASE_RETRY_S)
            return StreamEvent(b"")
        if batch.entries:
            try:
                self.feeds.meter(batch)
            except _DATABASE_DOWN:
                # Not metered, so not delivered: read it again next time.
                self.reader.seek({p: first for p, (first, _last) in batch.ranges.items()})
                log.warning("stream of %s: metering failed; the batch comes again", self.subscription.id)
                time.sleep(_DATABASE_RETRY_S)
                return StreamEvent(b"")
            self._last_event = time.monotonic()
            return StreamEvent(
                b"id: " + batch.cursor.encode() + b"\nevent: records\ndata: " + batch.body() + b"\n\n",
                batch=batch,
            )
        if time.monotonic() - self._last_event >= settings.sse_heartbeat_s:
            self._last_event = time.monotonic()
            return StreamEvent(b": keep-alive\n\n")
        return StreamEvent(b"")

    def _recheck(self) -> None:
        """Re-read the subscription now and then: a pause, a replay or a deletion ends the stream."""
        if time.monotonic() - self._checked < self.feeds.settings.subscription_recheck_s:
            return
        self._checked = time.monotonic()
        current = self.feeds.load(self.subscription.id)
        if current.reset_epoch != self.subscription.reset_epoch:
            raise StaleCursor("the subscription was replayed; reconnect to read from the new positions")
        self.subscription = current

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.reader.close()
            finally:
                if self._on_close is not None:
                    self._on_close()
