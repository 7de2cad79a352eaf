"""A need's notices pushed to its followers' webhooks (SQLite, a receiver on 127.0.0.1): the queue
filled with the notice, the signed push, the refusal of private targets, retries with backoff and
the end of them, and a webhook removed before its notice went out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from services.catalog.access.context import Collaborators
from services.catalog.access.settings import AccessSettings
from services.catalog.models import ApiKey
from services.catalog.needs import service
from services.catalog.needs.models import NeedPush
from services.catalog.needs.schemas import FollowCreate, NeedCreate, NeedDecline
from services.catalog.needs.settings import NeedsSettings
from services.catalog.needs.webhooks import DROPPED, WITHDRAWN, NeedWebhookPusher
from services.catalog.principals.service import add_api_key, add_principal, set_principal_status
from services.catalog.schemas import PrincipalCreate
from services.common import catalog_events, db
from services.common.auth import Principal, PrincipalKind
from services.common.webhooks import SIGNATURE_HEADER, UNREACHABLE, InvalidWebhook, WebhookTargets, sign
from tests.factories import follow_create, need_create
from tests.support.catalog_units import HEALTH, CatalogWorld
from tests.support.webhooks import Receiver

VISIT = Principal("one-stop-visit", PrincipalKind.scenario, "One-stop visit")
COMMUNITY = Principal("ai-community", PrincipalKind.scenario, "AI + community")
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _settings(**overrides: Any) -> NeedsSettings:
    """Webhooks to a receiver on this machine, retried at once."""
    return NeedsSettings(
        webhook_allow_loopback=True,
        webhook_allow_http_hosts=["127.0.0.1"],
        webhook_backoff_s=1.0,
        webhook_max_backoff_s=4.0,
        **overrides,
    )


def _ctx(catalog: CatalogWorld, actor: Principal, clock: Clock) -> Collaborators:
    return Collaborators(
        session=catalog.session,
        events=catalog.events,
        audit=catalog.auditor(actor),
        settings=AccessSettings(),
        clock=clock,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def followers(catalog: CatalogWorld) -> None:
    """The followers are principals with a key: pushes stop with their access."""
    for principal in (VISIT, COMMUNITY):
        add_principal(
            catalog.session,
            events=catalog.events,
            payload=PrincipalCreate(id=principal.id, kind=principal.kind.value, name=principal.name),
        )
        add_api_key(catalog.session, events=catalog.events, principal_id=principal.id, name="tests")
    catalog.session.commit()


def _need(catalog: CatalogWorld, clock: Clock) -> str:
    filed = service.file_need(
        _ctx(catalog, VISIT, clock),
        actor=VISIT,
        payload=NeedCreate(**need_create()),
        settings=NeedsSettings(),
    )
    catalog.session.commit()
    return filed.need.id


def _follow(
    catalog: CatalogWorld,
    clock: Clock,
    actor: Principal,
    need_id: str,
    url: str | None,
    settings: NeedsSettings,
) -> str | None:
    payload = FollowCreate(**follow_create(url))
    followed = service.follow_need(
        _ctx(catalog, actor, clock),
        actor=actor,
        need_id=need_id,
        follow=True,
        webhook=payload.webhook,
        targets=WebhookTargets.of(settings),
    )
    catalog.session.commit()
    assert followed.following
    assert followed.webhook_url == url
    return followed.webhook_secret


def _decline(catalog: CatalogWorld, clock: Clock, need_id: str) -> None:
    service.decline_need(
        _ctx(catalog, HEALTH, clock),
        actor=HEALTH,
        need_id=need_id,
        payload=NeedDecline(reason="No department collects it."),
    )
    catalog.session.commit()


def _sessions(catalog: CatalogWorld) -> sessionmaker[Session]:
    """Sessions of the pusher: its own, on the catalog's database."""
    engine = catalog.session.get_bind()
    assert isinstance(engine, sa.Engine)
    return db.session_factory(engine)


def _pusher(catalog: CatalogWorld, settings: NeedsSettings, clock: Clock) -> NeedWebhookPusher:
    return NeedWebhookPusher(_sessions(catalog), settings, clock=clock)


def _pushes(catalog: CatalogWorld) -> list[NeedPush]:
    """The queue as the pusher left it (read in a transaction of its own, ended at once)."""
    catalog.session.expire_all()
    pushes = list(catalog.session.scalars(sa.select(NeedPush).order_by(NeedPush.id)))
    catalog.session.commit()
    return pushes


def test_a_notice_is_queued_in_its_transaction_for_each_follower_with_a_webhook_only(
    catalog: CatalogWorld, clock: Clock, receiver: Receiver
) -> None:
    settings = _settings()
    need_id = _need(catalog, clock)  # the filer follows, without a webhook
    _follow(catalog, clock, COMMUNITY, need_id, receiver.url, settings)

    service.decline_need(
        _ctx(catalog, HEALTH, clock),
        actor=HEALTH,
        need_id=need_id,
        payload=NeedDecline(reason="No department collects it."),
    )
    catalog.session.rollback()
    assert _pushes(catalog) == []  # a notice rolled back is never pushed

    _decline(catalog, clock, need_id)
    [notice] = catalog.announced(catalog_events.NEED_NOTICE)
    assert notice["followers"] == ["one-stop-visit", "ai-community"]
    [push] = _pushes(catalog)
    assert (push.principal_id, push.url, push.status, push.notice_id) == (
        "ai-community",
        receiver.url,
        "pending",
        notice["id"],
    )
    # The receiver is told the notice, not who else follows the need.
    assert json.loads(push.body) == {**notice, "followers": ["ai-community"]}


def test_the_pusher_posts_each_notice_once_signed_with_the_secret_shown_at_follow(
    catalog: CatalogWorld, clock: Clock, receiver: Receiver
) -> None:
    settings = _settings()
    need_id = _need(catalog, clock)
    secret = _follow(catalog, clock, COMMUNITY, need_id, receiver.url, settings)
    assert secret is not None and secret.startswith("whsec_")
    _decline(catalog, clock, need_id)
    pusher = _pusher(catalog, settings, clock)
    try:
        assert pusher.push_once() == 1
        assert pusher.push_once() == 0  # delivered: never again
    finally:
        pusher.stop()

    [hit] = receiver.received
    timestamp = int(hit["headers"][SIGNATURE_HEADER].split(",")[0].removeprefix("t="))
    assert hit["headers"][SIGNATURE_HEADER] == sign(secret, timestamp, hit["body"])
    notice = json.loads(hit["body"])
    assert (notice["need_id"], notice["kind"], notice["status"]) == (need_id, "answer", "declined")
    [push] = _pushes(catalog)
    assert (push.status, push.attempts, push.http_status, push.last_error) == ("delivered", 1, 200, None)
    # The secret is shown once: reading the follow never shows it again.
    read = service.following(_ctx(catalog, COMMUNITY, clock), actor=COMMUNITY, need_id=need_id)
    assert (read.webhook_url, read.webhook_secret) == (receiver.url, None)
    [logged] = service.follow_deliveries(_ctx(catalog, COMMUNITY, clock), actor=COMMUNITY, need_id=need_id)
    assert (logged.status, logged.attempts, logged.http_status) == ("delivered", 1, 200)
    assert service.follow_deliveries(_ctx(catalog, VISIT, clock), actor=VISIT, need_id=need_id) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.5/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/hook",
        "http://public.example.cn/hook",
    ],
)
def test_a_webhook_to_a_private_address_or_over_plain_http_is_refused_at_follow(
    catalog: CatalogWorld, clock: Clock, url: str
) -> None:
    need_id = _need(catalog, clock)
    with pytest.raises(InvalidWebhook) as refused:
        _follow(catalog, clock, COMMUNITY, need_id, url, NeedsSettings())
    assert refused.value.extensions["path"] == "/body/webhook/url"


def test_a_target_that_turned_private_since_is_not_reached_and_is_retried(
    catalog: CatalogWorld, clock: Clock
) -> None:
    answers = {"hooks.example.cn": ["93.184.215.14"]}
    targets = WebhookTargets(resolver=lambda host, port: answers[host])
    need_id = _need(catalog, clock)
    followed = service.follow_need(
        _ctx(catalog, COMMUNITY, clock),
        actor=COMMUNITY,
        need_id=need_id,
        follow=True,
        webhook=FollowCreate(**follow_create("https://hooks.example.cn/hook")).webhook,
        targets=targets,
    )
    catalog.session.commit()
    assert followed.webhook_secret
    _decline(catalog, clock, need_id)
    answers["hooks.example.cn"] = ["10.0.0.7"]  # the name resolves inside the network now
    pusher = NeedWebhookPusher(_sessions(catalog), NeedsSettings(), targets=targets, clock=clock)
    try:
        assert pusher.push_once() == 1
    finally:
        pusher.stop()
    [push] = _pushes(catalog)
    assert (push.status, push.attempts, push.http_status, push.last_error) == (
        "pending",
        1,
        None,
        UNREACHABLE,
    )
    assert push.next_attempt_at.replace(tzinfo=UTC) == START + timedelta(seconds=1)


def test_a_failing_receiver_is_retried_with_backoff_then_the_notice_is_marked_failed(
    catalog: CatalogWorld, clock: Clock, receiver: Receiver
) -> None:
    settings = _settings(webhook_max_attempts=3)
    receiver.statuses = [503, 500, 502]
    need_id = _need(catalog, clock)
    _follow(catalog, clock, COMMUNITY, need_id, receiver.url, settings)
    _decline(catalog, clock, need_id)
    pusher = _pusher(catalog, settings, clock)
    waits = []
    try:
        assert pusher.push_once() == 1
        for _ in range(2):
            assert pusher.push_once() == 0  # not due before its backoff
            [push] = _pushes(catalog)
            waits.append((push.next_attempt_at.replace(tzinfo=UTC) - clock.now).total_seconds())
            clock.now = push.next_attempt_at.replace(tzinfo=UTC)
            assert pusher.push_once() == 1
        clock.now += timedelta(hours=1)
        assert pusher.push_once() == 0  # failed: no attempt left
    finally:
        pusher.stop()
    assert waits == [1.0, 2.0]
    assert [hit["status"] for hit in receiver.received] == [503, 500, 502]
    [push] = _pushes(catalog)
    assert (push.status, push.attempts, push.http_status, push.last_error) == ("failed", 3, 502, "HTTP 502")


@pytest.mark.parametrize("removal", ["unfollow", "follow without a webhook"])
def test_a_notice_for_a_webhook_removed_before_its_push_is_dropped_without_a_post(
    catalog: CatalogWorld, clock: Clock, receiver: Receiver, removal: str
) -> None:
    settings = _settings()
    need_id = _need(catalog, clock)
    _follow(catalog, clock, COMMUNITY, need_id, receiver.url, settings)
    _decline(catalog, clock, need_id)
    if removal == "unfollow":
        stopped = service.follow_need(
            _ctx(catalog, COMMUNITY, clock), actor=COMMUNITY, need_id=need_id, follow=False
        )
        assert not stopped.following
    else:
        assert _follow(catalog, clock, COMMUNITY, need_id, None, settings) is None
    catalog.session.commit()
    pusher = _pusher(catalog, settings, clock)
    try:
        assert pusher.push_once() == 0
    finally:
        pusher.stop()
    assert receiver.received == []
    [push] = _pushes(catalog)
    assert (push.status, push.attempts, push.last_error) == ("dropped", 0, DROPPED)


@pytest.mark.parametrize("withdrawal", ["suspended", "every key revoked"])
def test_nothing_is_pushed_to_a_follower_whose_access_was_withdrawn(
    catalog: CatalogWorld, clock: Clock, receiver: Receiver, withdrawal: str
) -> None:
    settings = _settings()
    need_id = _need(catalog, clock)
    _follow(catalog, clock, COMMUNITY, need_id, receiver.url, settings)
    _decline(catalog, clock, need_id)
    if withdrawal == "suspended":
        set_principal_status(
            catalog.session, events=catalog.events, principal_id=COMMUNITY.id, status="suspended"
        )
    else:
        catalog.session.execute(
            sa.update(ApiKey).where(ApiKey.principal_id == COMMUNITY.id).values(revoked_at=clock.now)
        )
    catalog.session.commit()
    pusher = _pusher(catalog, settings, clock)
    try:
        assert pusher.push_once() == 0
    finally:
        pusher.stop()
    assert receiver.received == []
    [push] = _pushes(catalog)
    assert (push.status, push.attempts, push.last_error) == ("dropped", 0, WITHDRAWN)
