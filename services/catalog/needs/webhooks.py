"""A need's notices pushed to its followers' webhooks.

A follower may give a webhook when it follows a need (:func:`set_webhook`); the answer shows the
webhook's signing secret once. Every notice :func:`~services.catalog.needs.service._notify`
announces on ``platform.catalog`` is also queued (:func:`queue_pushes`), in the same transaction
and from the same follower rows, once for each follower named in it that has a webhook: a notice
rolled back is never pushed, and one committed is pushed however the process fares after the
commit.

:class:`NeedWebhookPusher` (a :class:`~services.common.background.Loop`) takes the pushes that are
due, claims each for a lease (so that two replicas never push one twice at once), POSTs it signed
with the follower's secret to the address checked just then (:mod:`services.common.webhooks`:
public addresses only, unless the catalog's settings allow loopback or a network), and writes the
outcome: delivered on a 2xx answer, otherwise tried again after an exponential backoff until
``webhook_max_attempts`` attempts have failed (``failed``). A push whose follower stopped following,
removed or changed its webhook, was suspended or has no key left is ``dropped`` without a POST.

Each push carries the notice with ``followers`` narrowed to the receiving follower: a follower is
not told who else follows the need (the need's page shows only how many do).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from services.catalog.models import ApiKey
from services.catalog.models import Principal as PrincipalRow
from services.catalog.needs.models import NeedFollower, NeedPush
from services.catalog.needs.schemas import NeedNotice, PushRead, PushStatus
from services.catalog.needs.settings import NeedsSettings
from services.common import db
from services.common.background import Loop
from services.common.clock import utcnow
from services.common.webhooks import (
    SIGNATURE_HEADER,
    UNREACHABLE,
    TargetRefused,
    WebhookSender,
    WebhookTargets,
    backoff_s,
    sign,
)

log = logging.getLogger(__name__)

DROPPED = "the follower removed this webhook before the notice was delivered"
"""The delivery log's error of a push whose webhook was removed."""
WITHDRAWN = "the follower is suspended or has no key left: nothing is pushed to it"
"""The delivery log's error of a push to a follower whose access was withdrawn."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def set_webhook(follower: NeedFollower, url: str | None) -> str | None:
    """Give ``follower`` the webhook ``url`` (a checked URL) with a new secret, returned to show
    once; or, with None, remove its webhook. Pending pushes to a removed or replaced webhook are
    dropped by the pusher, which reads the follower's webhook at each attempt."""
    follower.webhook_url = url
    follower.webhook_secret = new_secret() if url else None
    return follower.webhook_secret


def queue_pushes(
    session: Session, notice: NeedNotice, webhooks: Sequence[tuple[str, str]], now: datetime
) -> None:
    """Queue ``notice`` for each ``(principal_id, url)`` of its followers that has a webhook, in
    the caller's transaction (the one that publishes the notice)."""
    for principal_id, url in webhooks:
        body = notice.model_copy(update={"followers": [principal_id]}).model_dump_json()
        session.add(
            NeedPush(
                notice_id=notice.id,
                need_id=notice.need_id,
                principal_id=principal_id,
                url=url,
                body=body,
                status=PushStatus.pending.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )


def pushes_of(session: Session, *, need_id: str, principal_id: str, limit: int) -> list[PushRead]:
    """The latest pushes of a need's notices to ``principal_id``'s webhook, newest first."""
    rows = session.scalars(
        sa.select(NeedPush)
        .where(NeedPush.need_id == need_id, NeedPush.principal_id == principal_id)
        .order_by(NeedPush.id.desc())
        .limit(limit)
    )
    return [
        PushRead(
            id=row.id,
            notice_id=row.notice_id,
            url=row.url,
            status=PushStatus(row.status),
            attempts=row.attempts,
            http_status=row.http_status,
            last_error=row.last_error,
            next_attempt_at=row.next_attempt_at if row.status == PushStatus.pending else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]


@dataclass(frozen=True)
class _Claimed:
    id: int
    notice_id: str
    url: str
    secret: str
    body: str
    attempts: int


class NeedWebhookPusher:
    """One thread pushing the due notices of every follower's webhook."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: NeedsSettings,
        *,
        targets: WebhookTargets | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.targets = targets or WebhookTargets.of(settings)
        self.clock = clock
        self._sender = WebhookSender(self.targets, timeout_s=settings.webhook_timeout_s, client=client)
        self._loop = Loop("catalog-need-webhooks", self._run)

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)
        self._sender.close()

    @property
    def last_error(self) -> str | None:
        return self._loop.last_error

    def readiness(self) -> str | None:
        return self._loop.readiness()

    def _run(self, loop: Loop) -> None:
        while not loop.stopping:
            pushed = 0
            try:
                pushed = self.push_once()
                loop.last_error = None
            except Exception as error:
                loop.fail(error)
                log.exception("need webhook pusher failed; trying again")
            if not pushed:
                loop.wait(self.settings.webhook_scan_interval_s)

    def push_once(self) -> int:
        """One round: every due push is tried once (or dropped); how many were tried."""
        claimed = self._claim()
        for push in claimed:
            if self._loop.stopping:
                break
            self._attempt(push)
        return len(claimed)

    def _claim(self) -> list[_Claimed]:
        """The due pushes, each leased to this pusher for longer than one POST may take; those
        whose follower no longer has that webhook are dropped here."""
        now = self.clock()
        lease = timedelta(seconds=2 * self.settings.webhook_timeout_s + 5)
        claimed: list[_Claimed] = []
        # Pushes stop with a principal's access, as feeds' deliveries do: suspended, or every key revoked.
        may_receive = sa.and_(
            sa.exists().where(PrincipalRow.id == NeedPush.principal_id, PrincipalRow.status == "active"),
            sa.exists().where(ApiKey.principal_id == NeedPush.principal_id, ApiKey.revoked_at.is_(None)),
        )
        with db.unit_of_work(self.sessions) as session:
            rows = session.execute(
                sa.select(NeedPush, NeedFollower, may_receive.label("may_receive"))
                .outerjoin(
                    NeedFollower,
                    sa.and_(
                        NeedFollower.need_id == NeedPush.need_id,
                        NeedFollower.principal_id == NeedPush.principal_id,
                    ),
                )
                .where(NeedPush.status == PushStatus.pending.value, NeedPush.next_attempt_at <= now)
                .order_by(NeedPush.next_attempt_at, NeedPush.id)
                .limit(self.settings.webhook_batch)
                .with_for_update(of=NeedPush, skip_locked=True)
            ).all()
            for push, follower, receives in rows:
                push.updated_at = now
                if follower is None or follower.webhook_url != push.url or not follower.webhook_secret:
                    push.status, push.last_error = PushStatus.dropped.value, DROPPED
                    continue
                if not receives:
                    push.status, push.last_error = PushStatus.dropped.value, WITHDRAWN
                    continue
                push.next_attempt_at = now + lease
                claimed.append(
                    _Claimed(
                        push.id, push.notice_id, push.url, follower.webhook_secret, push.body, push.attempts
                    )
                )
        return claimed

    def _attempt(self, push: _Claimed) -> None:
        body = push.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(push.secret, int(time.time()), body),
            "CityBase-Notice": push.notice_id,
            "CityBase-Delivery": str(push.id),
        }
        status: int | None = None
        error: str | None = None
        try:
            status = self._sender.post(push.url, body, headers)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (TargetRefused, httpx.HTTPError) as failure:
            log.warning("need notice push %s not delivered: %s: %s", push.id, type(failure).__name__, failure)
            error = UNREACHABLE
        attempts = push.attempts + 1
        now = self.clock()
        with db.unit_of_work(self.sessions) as session:
            row = session.get(NeedPush, push.id)
            if row is None:
                return
            row.attempts, row.http_status, row.last_error, row.updated_at = attempts, status, error, now
            if error is None:
                row.status = PushStatus.delivered.value
            elif attempts >= self.settings.webhook_max_attempts:
                row.status = PushStatus.failed.value
                log.warning("need notice push %s failed %d times; giving up: %s", push.id, attempts, error)
            else:
                delay = backoff_s(
                    attempts, self.settings.webhook_backoff_s, self.settings.webhook_max_backoff_s
                )
                row.next_attempt_at = now + timedelta(seconds=delay)
