"""Feeds' entry point: :class:`Feeds` holds the delivery rules' collaborators and answers every
route with one method: subscriptions (create, list, read, pause, resume, delete, the webhook log),
the long-poll, acknowledgements, replays and streams.

One transaction model: **every Feeds method owns its transactions.** A method that writes opens
one unit of work from ``sessions`` (:func:`services.common.db.unit_of_work`: it commits, then runs
the after-commit hooks), a method that only reads opens a short session of its own; no method
takes a session from its caller. Deliveries outlive requests (a long-poll waiting for records, a
stream open for hours, the webhook pusher), so a request's session cannot be theirs; the
subscription routes follow the same rule, so a newcomer meets one model.

The rules live beside it, one module each: whether a delivery may go ahead
(:mod:`~services.feeds.access`), reading and metering a batch (:mod:`~services.feeds.delivery`),
streams (:mod:`~services.feeds.streams`), subscription rows and views
(:mod:`~services.feeds.subscriptions`).

Positions only move on acknowledgement (:meth:`Feeds.ack`, a stream resumed with ``Last-Event-ID``, the webhook pusher
once a batch was handed over): at-least-once, with each record's CloudEvents id for de-duplication.
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy.orm import Session, sessionmaker

from services.common import db, usage_events
from services.common.auth import Principal
from services.common.bus import Bus, BusError, TopicSpec, UnknownTopic
from services.common.clock import utcnow
from services.common.envelope import CloudEvent, format_time
from services.common.i18n import N_, Sentence
from services.common.outbox import Outbox
from services.common.webhooks import WebhookTargets
from services.feeds.access import Clock, Credential, DeliveryAccess
from services.feeds.cursor import Cursor, CursorCodec
from services.feeds.delivery import SOURCE, Batch, Delivery, commit_rejoining, join_partitions
from services.feeds.exceptions import DatasetNotFound, StaleCursor, SubscriptionNotFound
from services.feeds.fanout import STREAM_FETCH_BYTES, Fanout
from services.feeds.metrics import FeedsMetrics
from services.feeds.models import Replay, Subscription
from services.feeds.open_data import OpenSnapshots, Snapshot, SnapshotFormat
from services.feeds.projection import FeedsCatalog, GrantState
from services.feeds.readers import Reader, ReaderPool, check_offsets, group_id_of, open_positioned
from services.feeds.schemas import (
    AckResult,
    Position,
    ReplayResult,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionDetail,
    SubscriptionPage,
    WebhookDeliveryPage,
)
from services.feeds.settings import FeedsSettings
from services.feeds.streams import Stream, StreamSlots
from services.feeds.subscriptions import (
    SubscriptionView,
    own_subscription,
    start_position,
    subscription_detail,
    subscriptions_of,
    webhook_deliveries,
)

log = logging.getLogger(__name__)


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
        self.fanout = Fanout(bus)
        self.access = DeliveryAccess(catalog=catalog, sessions=sessions, metrics=metrics, clock=clock)
        self.delivery = Delivery(
            access=self.access,
            catalog=catalog,
            cursors=self.cursors,
            sessions=sessions,
            outbox=outbox,
            metrics=metrics,
            settings=settings,
        )
        self.snapshots = OpenSnapshots(
            catalog=catalog, bus=bus, sessions=sessions, outbox=outbox, metrics=metrics, settings=settings
        )
        # Every mode of delivery reads and meters a batch the same way; the webhook pusher through these.
        self.read_batch = self.delivery.read_batch
        self.meter = self.delivery.meter

    # --- open data ----------------------------------------------------------------------------

    def open_snapshot(
        self,
        *,
        dataset_id: str,
        limit: int,
        format: SnapshotFormat,
        address: str,
        principal: Principal | None,
    ) -> Snapshot:
        """The latest ``limit`` records of an open dataset, for anyone, without their sensitive
        fields (see :mod:`services.feeds.open_data`). Counted against the client first, so that a
        flood of refused ids is limited too."""
        self.snapshots.count(address, principal)
        return self.snapshots.serve(
            dataset_id=dataset_id, limit=limit, format=format, address=address, principal=principal
        )

    # --- subscriptions ------------------------------------------------------------------------

    def create_subscription(
        self, *, principal: Principal, payload: SubscriptionCreate
    ) -> SubscriptionCreated:
        """A new subscription of the caller's scenario, positioned at ``start`` before it is stored.

        Needs a grant of the scenario for the dataset that allows delivery now (403 otherwise,
        saying why). The subscription's group is positioned (committed) at once, so that ``latest``
        means "from now", whichever reader reads first and however much later. The row is stored in
        a unit of work of its own.
        """
        dataset = self.catalog.dataset(payload.dataset)
        if dataset is None:
            raise DatasetNotFound(
                Sentence(N_("no dataset %(dataset)r"), dataset=payload.dataset), path="/dataset"
            )
        grant = self.access.grant_for(principal.id, payload.dataset, None)
        webhook_url = self.webhook_targets.check_url(payload.webhook.url) if payload.webhook else None
        start = start_position(payload.start)
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
                detail = self._detail(row, lag=False)
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

    def list_subscriptions(self, *, principal: Principal) -> SubscriptionPage:
        """The caller's subscriptions (an admin's: every one), oldest first, each saying whether
        it delivers now; read in a session of its own."""
        with self.sessions() as session:
            return SubscriptionPage(
                items=subscriptions_of(
                    session, principal=principal, grant_of=self._grant_of, now=self.clock()
                )
            )

    def get_subscription(self, *, principal: Principal, subscription_id: str) -> SubscriptionDetail:
        """The caller's subscription with its grant, positions and lag; read in a session of its own."""
        with self.sessions() as session:
            row = own_subscription(session, principal=principal, subscription_id=subscription_id)
            return self._detail(row)

    def set_status(self, *, principal: Principal, subscription_id: str, status: str) -> SubscriptionDetail:
        """Pause or resume. Resuming clears a webhook's failure count (it is tried again at once).
        Written in a unit of work of its own."""
        with db.unit_of_work(self.sessions) as session:
            row = own_subscription(session, principal=principal, subscription_id=subscription_id)
            if status == "active":
                self.access.grant_for(row.scenario_id, row.dataset_id, row.grant_id)
                row.webhook_failures = 0
                row.status_reason = None
            else:
                row.status_reason = "paused by the scenario"
            row.status = status
            session.flush()
            return self._detail(row)

    def delete_subscription(self, *, principal: Principal, subscription_id: str) -> None:
        """Forget the subscription and its group (its committed positions). Written in a unit of
        work of its own; the group is dropped once it committed."""
        with db.unit_of_work(self.sessions) as session:
            row = own_subscription(session, principal=principal, subscription_id=subscription_id)
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

    def deliveries(self, *, principal: Principal, subscription_id: str, limit: int) -> WebhookDeliveryPage:
        """The webhook delivery log of the caller's subscription, newest first; read in a session
        of its own."""
        with self.sessions() as session:
            own_subscription(session, principal=principal, subscription_id=subscription_id)
            return WebhookDeliveryPage(
                items=webhook_deliveries(session, subscription_id=subscription_id, limit=limit)
            )

    def _grant_of(self, row: Subscription) -> GrantState | None:
        return self.access.current_grant(row.scenario_id, row.dataset_id, row.grant_id)

    def _detail(self, row: Subscription, *, lag: bool = True) -> SubscriptionDetail:
        return subscription_detail(row, bus=self.bus, grant=self._grant_of(row), now=self.clock(), lag=lag)

    # --- delivery ---------------------------------------------------------------------------

    def load(self, subscription_id: str) -> SubscriptionView:
        """A detached copy of the subscription, read in a session of its own."""
        with self.sessions() as session:
            row = session.get(Subscription, subscription_id)
            if row is None:
                raise SubscriptionNotFound(
                    Sentence(N_("no subscription %(subscription_id)r"), subscription_id=subscription_id)
                )
            return SubscriptionView.of(row)

    def load_own(self, principal: Principal, subscription_id: str) -> SubscriptionView:
        """The caller's subscription as a detached copy, read in a session of its own."""
        with self.sessions() as session:
            row = own_subscription(session, principal=principal, subscription_id=subscription_id)
            return SubscriptionView.of(row)

    # --- long-poll --------------------------------------------------------------------------

    def poll(
        self,
        *,
        principal: Principal,
        subscription_id: str,
        max_records: int,
        wait_s: float,
        credential: Credential | None = None,
    ) -> Batch:
        """A long-poll: up to ``max_records`` records, waiting up to ``wait_s`` for the first; the
        batch is metered in a unit of work of its own."""
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

    def ack(self, *, principal: Principal, subscription_id: str, cursor: str) -> AckResult:
        """Commit the subscription's positions up to ``cursor`` (records before it are done). The
        positions are the bus's (the consumer group's); no session but the subscription's read."""
        subscription = self.load_own(principal, subscription_id)
        decoded = self.cursors.decode(cursor, subscription.id)
        if decoded.epoch != subscription.reset_epoch:
            raise StaleCursor(
                Sentence(
                    N_("the subscription was replayed after this cursor was issued; read on from the replay")
                ),
                path="/cursor",
            )
        if not decoded.offsets:
            return AckResult(committed={})
        with self.pool.lease(
            subscription.id, subscription.group_id, subscription.topic, subscription.reset_epoch
        ) as reader:
            join_partitions(reader, self.settings.join_timeout_s)
            committed = commit_rejoining(reader, decoded.offsets, self.settings.join_timeout_s)
            # A cursor behind what this reader delivered since (a client resuming from the last
            # cursor it kept, after a crash): what follows it must come again.
            positions = reader.cursor_offsets()
            behind = {p: o for p, o in committed.items() if positions.get(p, o) > o}
            if behind:
                reader.seek(behind)
            return AckResult(committed=committed)

    # --- replay -----------------------------------------------------------------------------

    def replay(self, *, principal: Principal, subscription_id: str, to: Position) -> ReplayResult:
        """Move the subscription to offsets or a time (within retention); recorded and announced.

        The replay raises the subscription's epoch: readers of the old epoch (here or on other
        replicas) leave and re-join at the new positions, and older cursors are refused. The new
        epoch, then the replay's record and event, are written in units of work of their own.
        """
        subscription = self.load_own(principal, subscription_id)
        target = start_position(to)
        if target.kind == "offsets":
            check_offsets(self.bus, subscription.topic, target.offsets or {})
        epoch = subscription.reset_epoch + 1
        with db.unit_of_work(self.sessions) as session:
            row = own_subscription(session, principal=principal, subscription_id=subscription_id)
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
        return ReplayResult(subscription_id=subscription_id, positions=positions, replays=epoch)

    # --- Server-Sent Events -----------------------------------------------------------------

    def open_stream(
        self,
        *,
        principal: Principal,
        subscription_id: str,
        last_event_id: str | None,
        credential: Credential | None = None,
    ) -> Stream:
        """A stream of the subscription, resumed after ``last_event_id``: on its topic's shared
        consumer while nothing else reads the subscription, else a member of its group (see
        :mod:`services.feeds.fanout`).

        At most ``max_streams`` in the process and ``max_streams_per_scenario`` of one scenario
        (429 too-many-streams beyond, naming the limit). No session but the subscription's read."""
        subscription = self.load_own(principal, subscription_id)
        credential = credential or Credential(principal.id, None)
        resume: Cursor | None = None
        if last_event_id:
            resume = self.cursors.decode(last_event_id, subscription.id)
            if resume.epoch != subscription.reset_epoch:
                resume = None  # replayed since: read on from the replay's positions
        self.access.authorize(subscription, credential)
        scenario_id = subscription.scenario_id
        self.streams.take(scenario_id)

        def give_back() -> None:
            self.streams.give_back(scenario_id)

        # A long-poll reader of this subscription idling in this process would keep partitions
        # from the stream until it times out (and keep it off the shared path): a client
        # switching to a stream releases it.
        self.pool.discard(subscription.id)

        def member() -> Reader:
            return Reader(
                self.bus,
                group_id=subscription.group_id,
                topic=subscription.topic,
                epoch=subscription.reset_epoch,
                client_id="citybase-feeds-sse",
                fetch_bytes=STREAM_FETCH_BYTES,
            )

        try:
            reader = self.fanout.open(
                subscription_id=subscription.id,
                group_id=subscription.group_id,
                topic=subscription.topic,
                epoch=subscription.reset_epoch,
                resume=resume.offsets if resume is not None else None,
                member=member,
            )
        except BaseException:
            give_back()
            raise
        try:
            group_reader = reader.group_reader
            if group_reader is not None and resume is not None and resume.offsets:
                # The client's previous stream may still hold the partitions for a moment (until
                # feeds notices it left): wait a little for them, so the resumption is exact.
                join_partitions(
                    group_reader, min(self.settings.join_timeout_s, 5.0), want=set(resume.offsets)
                )
                group_reader.seek(resume.offsets)
                group_reader.commit(resume.offsets)
        except BaseException:
            reader.close()
            give_back()
            raise
        return Stream(
            delivery=self.delivery,
            reload=self.load,
            settings=self.settings,
            subscription=subscription,
            reader=reader,
            credential=credential,
            on_close=give_back,
        )
