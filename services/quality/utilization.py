"""Utilization: is a dataset really used? From feeds' metering on ``platform.usage`` and the
grants on ``platform.catalog``.

- per dataset: active grants, active subscribers (subscriptions delivered to in the last
  ``active_days`` whose scenario still holds an active grant for it), records and bytes delivered
  per day, last use, consumer lag per subscription (records its consumer group has not
  acknowledged, counted as feeds counts it: :func:`subscription_lag`), and a 0-100 score
  (:func:`services.quality.scoring.utilization`: reach 40, recency 30, share of grants in use 30);
- per scenario: its grants, the datasets it used, records consumed, last activity;
- city-wide: the penetration rate, datasets used by at least one scenario in the last
  ``active_days`` over active datasets;
- showcase-only findings (:func:`idle`): scenarios with active grants and no delivery for N days,
  active datasets never delivered to anyone, active grants unused for N days; each with evidence.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.common import db, quality_events
from services.common.bus import Admin
from services.common.clock import as_utc, aware
from services.common.envelope import CloudEvent, parse_time
from services.common.i18n import N_, Sentence
from services.common.outbox import Outbox
from services.common.topics import records_topic
from services.quality import scoring
from services.quality.exceptions import DatasetNotFound, ScenarioNotFound
from services.quality.models import QualityUsage
from services.quality.projection import GrantState, QualityCatalog
from services.quality.settings import QualitySettings

log = logging.getLogger(__name__)

DAY = timedelta(days=1)


def delivery_from_event(event: CloudEvent) -> dict[str, Any] | None:
    """The row of one usage event; None when it names no scenario or dataset."""
    data = event.data if isinstance(event.data, dict) else {}
    scenario_id, dataset_id = data.get("scenario_id"), data.get("dataset_id")
    if not isinstance(scenario_id, str) or not isinstance(dataset_id, str):
        return None
    delivered_at = event.time
    if isinstance(data.get("delivered_at"), str):
        with contextlib.suppress(ValueError):
            delivered_at = parse_time(data["delivered_at"])
    delivered_at = as_utc(delivered_at)
    return {
        "event_id": event.id[:200],
        "scenario_id": scenario_id,
        "subscription_id": _text(data.get("subscription_id")),
        "consumer_group": _text(data.get("consumer_group")),
        "grant_id": _text(data.get("grant_id")),
        "dataset_id": dataset_id,
        "records": _count(data.get("records")),
        "bytes": _count(data.get("bytes")),
        "mode": _text(data.get("mode")),
        "delivered_at": delivered_at,
        "day": delivered_at.strftime("%Y-%m-%d"),
        "last_offsets": data.get("partitions") if isinstance(data.get("partitions"), list) else None,
    }


def _text(value: Any) -> str | None:
    return str(value)[:200] if value is not None else None


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def store_deliveries(session: Session, deliveries: Sequence[dict[str, Any]]) -> int:
    """Insert the deliveries not stored yet (a redelivered usage event is stored once)."""
    unique = {delivery["event_id"]: delivery for delivery in deliveries}
    known = set(
        session.scalars(sa.select(QualityUsage.event_id).where(QualityUsage.event_id.in_(list(unique))))
    )
    fresh = [delivery for event_id, delivery in unique.items() if event_id not in known]
    session.add_all(QualityUsage(**delivery) for delivery in fresh)
    return len(fresh)


# --- queries --------------------------------------------------------------------------------


def _last_use(session: Session, column: Any, since: datetime | None = None) -> dict[str, datetime]:
    query = sa.select(column, sa.func.max(QualityUsage.delivered_at)).group_by(column)
    if since is not None:
        query = query.where(QualityUsage.delivered_at >= since)
    return {key: aware(moment) for key, moment in session.execute(query) if key is not None and moment}


def _active_subscribers(session: Session, since: datetime, grants: Sequence[GrantState]) -> dict[str, int]:
    """Per dataset, the subscriptions delivered to since ``since`` that may still deliver: their
    scenario holds an active grant for the dataset (a revoked, suspended or expired grant stops
    delivery, so its subscriptions are not counted, as feeds no longer delivers to them)."""
    allowed = {(grant.scenario_id, grant.dataset_id) for grant in grants}
    query = (
        sa.select(QualityUsage.dataset_id, QualityUsage.scenario_id, QualityUsage.subscription_id)
        .where(QualityUsage.delivered_at >= since, QualityUsage.subscription_id.is_not(None))
        .distinct()
    )
    counts: dict[str, int] = {}
    for dataset_id, scenario_id, _subscription_id in session.execute(query):
        if (scenario_id, dataset_id) in allowed:
            counts[dataset_id] = counts.get(dataset_id, 0) + 1
    return counts


def subscription_lag(admin: Admin, consumer_group: str, topic: str) -> int | None:
    """Records of ``topic`` the subscription's group has not acknowledged: the figure feeds shows
    for the subscription (:meth:`~services.common.bus.Admin.lag`, the one count of lag). None when
    the group holds no position while the topic holds records: the subscription was deleted
    (feeds positions a subscription's group when it creates it)."""
    lags = admin.lag(consumer_group, topic)
    if any(lags.values()) and not admin.committed_offsets(consumer_group, topic):
        return None
    return sum(lags.values())


def _days_since(now: datetime, moment: datetime | None) -> float | None:
    return round((now - moment).total_seconds() / 86400, 3) if moment is not None else None


def _active_grants(catalog: QualityCatalog, now: datetime) -> list[GrantState]:
    return [grant for grant in catalog.grants() if grant.active_at(now)]


def dataset_scores(
    session: Session, catalog: QualityCatalog, settings: QualitySettings, now: datetime
) -> dict[str, dict[str, Any]]:
    """The utilization summary of every active dataset (for the gauges and the rankings)."""
    active_since = now - timedelta(days=settings.active_days)
    idle_since = now - timedelta(days=settings.idle_days)
    last_by_dataset = _last_use(session, QualityUsage.dataset_id)
    last_by_grant = _last_use(session, QualityUsage.grant_id)
    grants = _active_grants(catalog, now)
    subscribers = _active_subscribers(session, active_since, grants)
    day_records = dict(
        session.execute(
            sa.select(QualityUsage.dataset_id, sa.func.sum(QualityUsage.records))
            .where(QualityUsage.delivered_at >= now - DAY)
            .group_by(QualityUsage.dataset_id)
        ).all()
    )
    out: dict[str, dict[str, Any]] = {}
    for dataset in catalog.datasets():
        if not dataset.scored:
            continue
        mine = [grant for grant in grants if grant.dataset_id == dataset.id]
        used = [
            g for g in mine if (last_by_grant.get(g.id) or datetime.min.replace(tzinfo=UTC)) >= idle_since
        ]
        last = last_by_dataset.get(dataset.id)
        days = _days_since(now, last)
        out[dataset.id] = {
            "dataset_id": dataset.id,
            "domain_id": dataset.domain_id,
            "owner_department_id": dataset.owner_department_id,
            "active_grants": len(mine),
            "grants_used": len(used),
            "active_subscribers": subscribers.get(dataset.id, 0),
            "records_last_day": int(day_records.get(dataset.id) or 0),
            "last_use": last,
            "days_since_last_use": days,
            "score": scoring.utilization(
                active_subscribers=subscribers.get(dataset.id, 0),
                target_subscribers=settings.target_subscribers,
                days_since_use=days,
                idle_days=settings.idle_days,
                grants_active=len(mine),
                grants_used=len(used),
            ),
        }
    return out


def utilization_state(entry: dict[str, Any]) -> dict[str, Any]:
    """What the utilization event says of one dataset (an entry of :func:`dataset_scores`)."""
    last_use = entry["last_use"]
    return {
        "dataset_id": entry["dataset_id"],
        "score": entry["score"],
        "active_grants": entry["active_grants"],
        "grants_used": entry["grants_used"],
        "active_subscribers": entry["active_subscribers"],
        "records_last_day": entry["records_last_day"],
        "last_use": as_utc(last_use).isoformat() if last_use is not None else None,
    }


class UtilizationAnnouncer:
    """Announces a dataset's utilization on ``platform.quality`` each time it changes, so that the
    catalog's record of the dataset (read without a key too) shows the score quality computes,
    never a second computation of it. The first refresh after a start announces every dataset
    once; after that only what changed. What was announced is remembered only once the outbox row
    is committed."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._announced: dict[str, dict[str, Any]] = {}

    def announce(self, session: Session, entries: Sequence[dict[str, Any]], now: datetime) -> int:
        changed = {}
        for entry in entries:
            figures = utilization_state(entry)
            if self._announced.get(figures["dataset_id"]) != figures:
                changed[figures["dataset_id"]] = figures
        for dataset_id, figures in changed.items():
            event = CloudEvent(
                type=quality_events.UTILIZATION,
                source=quality_events.SOURCE,
                subject=dataset_id,
                data={**figures, "computed_at": as_utc(now).isoformat()},
            )
            self._outbox.add(session, event.to_record(quality_events.TOPIC, dataset_id.encode()))
        db.after_commit(session, lambda: self._announced.update(changed))
        return len(changed)


def overview(
    session: Session, catalog: QualityCatalog, settings: QualitySettings, now: datetime
) -> dict[str, Any]:
    """City-wide utilization: the penetration rate and every dataset's score, lowest first.
    Reads in the caller's session (the request's, or the gauges' timer's)."""
    scores = dataset_scores(session, catalog, settings, now)
    active_since = now - timedelta(days=settings.active_days)
    used = {
        dataset_id
        for (dataset_id,) in session.execute(
            sa.select(QualityUsage.dataset_id)
            .where(QualityUsage.delivered_at >= active_since, QualityUsage.records > 0)
            .distinct()
        )
    }
    active = [dataset_id for dataset_id in scores]
    used_active = [dataset_id for dataset_id in active if dataset_id in used]
    return {
        "at": now,
        "active_datasets": len(active),
        "used_datasets": len(used_active),
        "penetration_rate": round(len(used_active) / len(active), 4) if active else None,
        "period_days": settings.active_days,
        "datasets": sorted(scores.values(), key=lambda entry: (entry["score"], entry["dataset_id"])),
    }


def _daily(session: Session, column: Any, key: str, since: datetime) -> list[dict[str, Any]]:
    rows = session.execute(
        sa.select(
            QualityUsage.day,
            sa.func.sum(QualityUsage.records),
            sa.func.sum(QualityUsage.bytes),
            sa.func.count(),
        )
        .where(column == key, QualityUsage.delivered_at >= since)
        .group_by(QualityUsage.day)
        .order_by(QualityUsage.day)
    ).all()
    return [
        {"day": day, "records": int(records or 0), "bytes": int(size or 0), "deliveries": int(count)}
        for day, records, size, count in rows
    ]


def dataset_utilization(
    *,
    session: Session,
    catalog: QualityCatalog,
    settings: QualitySettings,
    dataset_id: str,
    now: datetime,
    days: int = 30,
    admin: Admin | None = None,
) -> dict[str, Any]:
    """A dataset's utilization score, its daily use over ``days``, its grants and each
    subscription's last delivery and lag. Reads in the caller's session (the request's)."""
    dataset = catalog.dataset(dataset_id)
    if dataset is None:
        raise DatasetNotFound(Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id))
    summary = dataset_scores(session, catalog, settings, now).get(dataset_id) or {
        "dataset_id": dataset_id,
        "note": f"the dataset is {dataset.status}: not scored for utilization",
    }
    subscriptions = _subscriptions(session, dataset_id, now, admin, catalog)
    grants = [grant for grant in catalog.grants() if grant.dataset_id == dataset_id]
    last_by_grant = _last_use(session, QualityUsage.grant_id)
    return {
        **summary,
        "daily": _daily(session, QualityUsage.dataset_id, dataset_id, now - timedelta(days=days)),
        "grants": [
            {
                "grant_id": grant.id,
                "scenario_id": grant.scenario_id,
                "status": grant.status,
                "active": grant.active_at(now),
                "expires_at": grant.expires_at,
                "last_use": last_by_grant.get(grant.id),
            }
            for grant in grants
        ],
        "subscriptions": subscriptions,
    }


def _subscriptions(
    session: Session, dataset_id: str, now: datetime, admin: Admin | None, catalog: QualityCatalog
) -> list[dict[str, Any]]:
    """Each subscription's last delivery, whether it may still deliver (its scenario holds an
    active grant for the dataset) and, when the bus answers, its lag (:func:`subscription_lag`)."""
    rows = session.execute(
        sa.select(QualityUsage)
        .where(QualityUsage.dataset_id == dataset_id)
        .order_by(QualityUsage.delivered_at.desc())
        .limit(5000)
    ).scalars()
    latest: dict[str, QualityUsage] = {}
    totals: dict[str, int] = {}
    for row in rows:
        key = row.subscription_id or row.event_id
        latest.setdefault(key, row)
        totals[key] = totals.get(key, 0) + row.records
    allowed = {grant.scenario_id for grant in _active_grants(catalog, now) if grant.dataset_id == dataset_id}
    topic = records_topic(dataset_id)
    out = []
    for key, row in latest.items():
        lag: int | None = None
        if admin is not None and row.consumer_group:
            try:
                lag = subscription_lag(admin, row.consumer_group, topic)
            except Exception:
                log.debug("lag of %s unavailable", key, exc_info=True)
        out.append(
            {
                "subscription_id": row.subscription_id,
                "scenario_id": row.scenario_id,
                "grant_id": row.grant_id,
                "delivering": row.scenario_id in allowed,
                "last_delivery": aware(row.delivered_at),
                "records_recent": totals[key],
                "lag_records": lag,
            }
        )
    return out


def scenario_utilization(
    *,
    session: Session,
    catalog: QualityCatalog,
    settings: QualitySettings,
    scenario_id: str,
    now: datetime,
    days: int = 30,
) -> dict[str, Any]:
    """What a scenario consumed over ``days``, per dataset and per day, with its grants. Reads
    in the caller's session (the request's)."""
    grants = [grant for grant in catalog.grants() if grant.scenario_id == scenario_id]
    since = now - timedelta(days=days)
    rows = session.execute(
        sa.select(
            QualityUsage.dataset_id,
            sa.func.sum(QualityUsage.records),
            sa.func.sum(QualityUsage.bytes),
            sa.func.max(QualityUsage.delivered_at),
        )
        .where(QualityUsage.scenario_id == scenario_id, QualityUsage.delivered_at >= since)
        .group_by(QualityUsage.dataset_id)
    ).all()
    last_ever = _last_use(session, QualityUsage.scenario_id).get(scenario_id)
    if not grants and last_ever is None:
        raise ScenarioNotFound(
            Sentence(N_("no grant and no delivery for scenario %(scenario_id)r"), scenario_id=scenario_id)
        )
    datasets = [
        {
            "dataset_id": dataset_id,
            "records": int(records or 0),
            "bytes": int(size or 0),
            "last_use": aware(last),
        }
        for dataset_id, records, size, last in rows
    ]
    return {
        "scenario_id": scenario_id,
        "period_days": days,
        "grants": [
            {"grant_id": g.id, "dataset_id": g.dataset_id, "status": g.status, "active": g.active_at(now)}
            for g in grants
        ],
        "active_grants": sum(1 for g in grants if g.active_at(now)),
        "datasets_used": len(datasets),
        "records_consumed": sum(d["records"] for d in datasets),
        "bytes_consumed": sum(d["bytes"] for d in datasets),
        "last_activity": last_ever,
        "days_since_last_activity": _days_since(now, last_ever),
        "datasets": sorted(datasets, key=lambda d: d["dataset_id"]),
        "daily": _daily(session, QualityUsage.scenario_id, scenario_id, since),
    }


def evidence(
    kind: str, finding: dict[str, Any], *, moment: Callable[[datetime | str], str] | None = None
) -> Sentence:
    """Why a showcase-only finding of ``kind`` (a key of :func:`idle`'s answer) was made, in words
    built from its own fields: the JSON keeps the English with ISO 8601 moments, a scorecard page
    shows its language and formats each moment with ``moment``."""
    moment = moment or _iso
    grants = len(finding.get("active_grants") or [])
    if kind in ("idle_scenarios", "idle"):
        last = finding.get("last_activity")
        if last:
            return Sentence(
                N_("%(count)s active grants; last delivery %(last)s"), count=grants, last=moment(last)
            )
        return Sentence(N_("%(count)s active grants; no delivery ever"), count=grants)
    if kind == "unused_grants":
        last = finding.get("last_use")
        if last:
            return Sentence(N_("last delivery %(last)s"), last=moment(last))
        return Sentence(N_("never used since it was granted"))
    if grants:
        return Sentence(N_("no delivery to any scenario despite %(count)s active grants"), count=grants)
    return Sentence(N_("no delivery to any scenario; nobody holds a grant"))


def _iso(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


def idle(session: Session, catalog: QualityCatalog, now: datetime, days: float) -> dict[str, Any]:
    """Showcase-only findings: what was granted or published and is not used, with evidence.

    Something younger than ``days`` (a grant valid since, a dataset created since) is not judged
    yet: an unused grant of yesterday is not a showcase. Reads in the caller's session.
    """
    horizon = now - timedelta(days=days)
    last_by_scenario = _last_use(session, QualityUsage.scenario_id)
    last_by_grant = _last_use(session, QualityUsage.grant_id)
    last_by_dataset = _last_use(session, QualityUsage.dataset_id)
    grants = _active_grants(catalog, now)

    def since(grant: GrantState) -> datetime | None:
        return grant.valid_from

    scenarios: dict[str, list[GrantState]] = {}
    for grant in grants:
        scenarios.setdefault(grant.scenario_id, []).append(grant)
    idle_scenarios = []
    for scenario_id, held in sorted(scenarios.items()):
        last = last_by_scenario.get(scenario_id)
        starts = [moment for moment in (since(g) for g in held) if moment is not None]
        oldest = min(starts) if starts else None
        reference = last or oldest
        if reference is None or reference > horizon:
            continue
        idle_scenarios.append(
            {
                "scenario_id": scenario_id,
                "active_grants": [g.id for g in held],
                "datasets": sorted({g.dataset_id for g in held}),
                "granted_since": oldest,
                "last_activity": last,
                "idle_days": _days_since(now, reference),
            }
        )
    unused_grants = []
    for grant in grants:
        last = last_by_grant.get(grant.id)
        reference = last or since(grant)
        if reference is None or reference > horizon:
            continue
        unused_grants.append(
            {
                "grant_id": grant.id,
                "scenario_id": grant.scenario_id,
                "dataset_id": grant.dataset_id,
                "valid_from": grant.valid_from,
                "expires_at": grant.expires_at,
                "last_use": last,
                "idle_days": _days_since(now, reference),
            }
        )
    never = []
    for dataset in catalog.datasets():
        if dataset.status != "active" or dataset.id in last_by_dataset:
            continue
        if dataset.created_at is not None and dataset.created_at > horizon:
            continue
        on_it = [g.id for g in grants if g.dataset_id == dataset.id]
        never.append(
            {
                "dataset_id": dataset.id,
                "owner_department_id": dataset.owner_department_id,
                "published_since": dataset.created_at,
                "active_grants": on_it,
            }
        )
    findings: dict[str, list[dict[str, Any]]] = {
        "idle_scenarios": idle_scenarios,
        "never_delivered_datasets": never,
        "unused_grants": unused_grants,
    }
    for kind, items in findings.items():
        for finding in items:
            finding["evidence"] = str(evidence(kind, finding))
    return {"at": now, "days": days, **findings}
