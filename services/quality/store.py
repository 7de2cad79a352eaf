"""Storing scored windows: one unit of work per window with its rule evidence, the dataset's
state and the events it causes (through quality's outbox): every new current score (flagged
``significant`` when it moved by at least ``score_change_threshold`` points) and every SLA breach
opened or resolved. Only after that commit does the worker commit the window's offsets. The
freshness timer stores stalls the same way.

**A dataset's current score** is the overall (and dimensions) of its latest closed window, a
freshness window included: :func:`current_windows` chooses it, from the pointer
:func:`_make_current` keeps in the dataset's state. The quality endpoint, the rankings, the
``citybase_dataset_quality_score`` gauges and, through the score event on ``platform.quality``,
the catalog's dataset record all show that one figure.

:class:`QualityService` opens its own units of work from its sessionmaker; the module functions
write in the session their caller hands them and flush, never commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from services.common import db, quality_events
from services.common.clock import aware, utcnow
from services.common.envelope import CloudEvent
from services.common.outbox import Outbox
from services.quality import scoring
from services.quality.metrics import QualityMetrics
from services.quality.models import (
    QualityDatasetState,
    QualityRuleResult,
    QualitySlaBreach,
    QualityWindow,
)
from services.quality.projection import QualityCatalog
from services.quality.scorer import Clock, Scorer
from services.quality.settings import DIMENSIONS, QualitySettings
from services.quality.windows import Window, WindowScore


class QualityService:
    """Stores scored windows and runs the freshness check; one per process."""

    def __init__(
        self,
        *,
        catalog: QualityCatalog,
        scorer: Scorer,
        sessions: sessionmaker[Session],
        outbox: Outbox,
        settings: QualitySettings,
        metrics: QualityMetrics,
        clock: Clock = utcnow,
    ) -> None:
        self.catalog = catalog
        self.scorer = scorer
        self.sessions = sessions
        self.outbox = outbox
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        # The worker and the freshness timer both write a dataset's state: one at a time.
        self._state_lock = threading.Lock()
        self.windows_stored = 0

    def process(self, windows: Sequence[Window]) -> list[WindowScore]:
        """Score and store closed windows; returns once every result is committed (one unit of
        work of its own per window, opened from ``sessions``)."""
        scored = []
        for window in windows:
            started = time.perf_counter()
            last_event_at = self._last_event_at(window.dataset_id)
            result = self.scorer.score(window, last_event_at)
            with self._state_lock, db.unit_of_work(self.sessions) as session:
                store_window(session=session, outbox=self.outbox, score=result, settings=self.settings)
                opened = opened_breaches(session)
                current = made_current(session)
            self._count_breaches(opened)
            self.metrics.show_current(current)
            self.metrics.observe_window(result, time.perf_counter() - started)
            self.windows_stored += 1
            scored.append(result)
        return scored

    def _count_breaches(self, opened: list[tuple[str, str]]) -> None:
        """Counted once the unit of work committed."""
        for dataset_id, kind in opened:
            self.metrics.breaches.labels(dataset_id, kind).inc()

    def _last_event_at(self, dataset_id: str) -> datetime | None:
        with self.sessions() as session:
            state = session.get(QualityDatasetState, dataset_id)
            return aware(state.last_event_at) if state is not None else None

    def check_freshness(self) -> dict[str, float]:
        """The timer's check: a feed silent beyond its SLA frequency drops timeliness and breaches.
        Runs in a unit of work of its own, opened from ``sessions``."""
        with self._state_lock, db.unit_of_work(self.sessions) as session:
            found = check_freshness(
                session=session,
                outbox=self.outbox,
                catalog=self.catalog,
                settings=self.settings,
                now=self.clock(),
            )
            opened = opened_breaches(session)
            # Every dataset's, not only what this check changed: the gauges hold the current
            # score after a restart too.
            current = {row.dataset_id: scores_of(row) for row in current_windows(session).values()}
        self._count_breaches(opened)
        self.metrics.show_current(current)
        for dataset_id, seconds in found.items():
            self.metrics.freshness.labels(dataset_id).set(seconds)
        self.metrics.describe_datasets(self.catalog, self.settings)
        return found


def store_window(*, session: Session, outbox: Outbox, score: WindowScore, settings: QualitySettings) -> int:
    """Insert the window and its evidence, update the dataset's state, announce what changed.
    Writes in the caller's session (a unit of work of :class:`QualityService`) and flushes."""
    row = QualityWindow(
        dataset_id=score.dataset_id,
        contract_version=score.contract_version,
        kind=score.kind,
        opened_at=score.opened_at,
        closed_at=score.closed_at,
        records=score.records,
        accepted=score.accepted,
        rejected=score.rejected,
        duplicates=score.duplicates,
        late=score.late,
        overall=score.overall,
        freshness_s=score.freshness_s,
        lateness_p95_s=score.lateness_p95_s,
        problems=score.problems,
        details=score.details,
        **{name: score.scores.get(name) for name in DIMENSIONS},
    )
    session.add(row)
    session.flush()
    session.add_all(
        QualityRuleResult(
            window_id=row.id,
            rule_index=result.rule.index,
            rule=result.rule.name[:200],
            expectation_type=result.rule.type[:200],
            column=result.rule.column,
            dimension=result.rule.scored_as,
            success=result.success,
            element_count=result.element_count,
            unexpected_count=result.unexpected_count,
            missing_count=result.missing_count,
            observed_value=result.observed_value,
            examples=result.examples,
            error=result.error,
        )
        for result in score.rules
    )
    state = dataset_state(session=session, dataset_id=score.dataset_id, now=score.closed_at)
    state.last_record_at = score.closed_at
    if score.last_event_at is not None and (
        state.last_event_at is None or aware(state.last_event_at) < score.last_event_at
    ):
        state.last_event_at = score.last_event_at
    _make_current(session, outbox, state, row, settings)
    now = score.closed_at
    if (
        state.freshness_breach_id is not None
        and score.freshness_s is not None
        and score.freshness_s <= score.frequency_s
    ):
        _resolve_breach(session, outbox, state.freshness_breach_id, now, score.freshness_s)
        state.freshness_breach_id = None
    if score.latency_breached and state.latency_breach_id is None:
        state.latency_breach_id = _open_breach(
            session,
            outbox,
            score.dataset_id,
            "latency",
            now,
            target_s=score.latency_s,
            observed_s=score.lateness_p95_s,
            details={"late": score.late, "measured": score.measured, "window_id": row.id},
        )
    elif not score.latency_breached and score.measured and state.latency_breach_id is not None:
        _resolve_breach(session, outbox, state.latency_breach_id, now, score.lateness_p95_s)
        state.latency_breach_id = None
    return row.id


def dataset_state(*, session: Session, dataset_id: str, now: datetime) -> QualityDatasetState:
    """The dataset's state row, created (and flushed) in the caller's session if it has none."""
    state = session.get(QualityDatasetState, dataset_id)
    if state is None:
        state = QualityDatasetState(dataset_id=dataset_id, first_seen_at=now, updated_at=now)
        session.add(state)
        session.flush()
    return state


def scores_of(row: QualityWindow) -> dict[str, float | None]:
    """A window's scores per dimension and overall."""
    return {**{name: getattr(row, name) for name in DIMENSIONS}, "overall": row.overall}


def current_windows(session: Session, dataset_ids: Iterable[str] | None = None) -> dict[str, QualityWindow]:
    """The window whose scores are each dataset's current score (of ``dataset_ids``, or of every
    dataset scored): its latest closed window. The one choice of "the dataset's score" that the
    quality endpoint, the rankings, the gauges and the score events (hence the catalog) share."""
    query = sa.select(QualityWindow).join(
        QualityDatasetState, QualityDatasetState.last_window_id == QualityWindow.id
    )
    if dataset_ids is not None:
        query = query.where(QualityDatasetState.dataset_id.in_(list(dataset_ids)))
    return {row.dataset_id: row for row in session.scalars(query)}


def made_current(session: Session) -> dict[str, dict[str, float | None]]:
    """The scores this unit of work made current, per dataset, for the gauges after its commit."""
    current: dict[str, dict[str, float | None]] = session.info.setdefault("quality_current_scores", {})
    return current


def _make_current(
    session: Session,
    outbox: Outbox,
    state: QualityDatasetState,
    row: QualityWindow,
    settings: QualitySettings,
) -> None:
    """Make ``row`` the dataset's current score, unless a window that closed later already is
    (a window stored late does not take the place of a newer one), and announce it, so that the
    catalog's record shows it. Each one is announced (not only the moves beyond the threshold:
    the catalog would show an older figure than the quality endpoint); ``significant`` marks a
    move by at least ``score_change_threshold`` points (or a first score), what an alert acts on."""
    if state.last_window_id is not None and state.last_window_id != row.id:
        shown = session.get(QualityWindow, state.last_window_id)
        if shown is not None and aware(shown.closed_at) > aware(row.closed_at):
            return
    state.last_window_id = row.id
    state.last_overall = row.overall
    made_current(session)[row.dataset_id] = scores_of(row)
    previous = state.announced_overall
    change = round(row.overall - previous, 3) if row.overall is not None and previous is not None else None
    state.announced_overall = row.overall
    _publish(
        session,
        outbox,
        quality_events.SCORE,
        row.dataset_id,
        {
            "dataset_id": row.dataset_id,
            "window_id": row.id,
            "kind": row.kind,
            "contract_version": row.contract_version,
            "opened_at": _iso(row.opened_at),
            "closed_at": _iso(row.closed_at),
            "records": row.records,
            "scores": {name: getattr(row, name) for name in DIMENSIONS},
            # None: no dimension measurable in the window (see problems); shown as such everywhere.
            "overall": row.overall,
            "previous_overall": previous,
            "change": change,
            "significant": change is None or abs(change) >= settings.score_change_threshold,
            "freshness_s": row.freshness_s,
            "problems": list(row.problems or []),
        },
    )


def _open_breach(
    session: Session,
    outbox: Outbox,
    dataset_id: str,
    kind: str,
    now: datetime,
    *,
    target_s: float,
    observed_s: float | None,
    details: dict[str, Any],
) -> int:
    breach = QualitySlaBreach(
        dataset_id=dataset_id,
        kind=kind,
        opened_at=now,
        target_s=target_s,
        observed_s=observed_s,
        details=details,
    )
    session.add(breach)
    session.flush()
    _publish(session, outbox, quality_events.SLA_BREACH, dataset_id, breach_data(breach, "open"))
    opened_breaches(session).append((dataset_id, kind))
    return breach.id


def opened_breaches(session: Session) -> list[tuple[str, str]]:
    """(dataset, kind) of the breaches this unit of work opened, for the metrics after its commit."""
    opened: list[tuple[str, str]] = session.info.setdefault("quality_opened_breaches", [])
    return opened


def _resolve_breach(
    session: Session, outbox: Outbox, breach_id: int, now: datetime, observed_s: float | None
) -> None:
    breach = session.get(QualitySlaBreach, breach_id)
    if breach is None or breach.resolved_at is not None:
        return
    breach.resolved_at = now
    data = breach_data(breach, "resolved")
    data["observed_s"] = observed_s
    _publish(session, outbox, quality_events.SLA_BREACH, breach.dataset_id, data)


def breach_data(breach: QualitySlaBreach, state: str) -> dict[str, Any]:
    return {
        "dataset_id": breach.dataset_id,
        "breach_id": breach.id,
        "kind": breach.kind,
        "state": state,
        "opened_at": _iso(breach.opened_at),
        "resolved_at": _iso(breach.resolved_at) if breach.resolved_at else None,
        "target_s": breach.target_s,
        "observed_s": breach.observed_s,
        "details": breach.details or {},
    }


def _publish(
    session: Session, outbox: Outbox, event_type: str, dataset_id: str, data: dict[str, Any]
) -> None:
    event = CloudEvent(type=event_type, source=quality_events.SOURCE, subject=dataset_id, data=data)
    outbox.add(session, event.to_record(quality_events.TOPIC, dataset_id.encode()))


def _iso(moment: datetime | None) -> str | None:
    moment = aware(moment)
    return moment.isoformat() if moment is not None else None


def check_freshness(
    *, session: Session, outbox: Outbox, catalog: QualityCatalog, settings: QualitySettings, now: datetime
) -> dict[str, float]:
    """Freshness of every scored dataset now; a stalled one gets a breach and a lower timeliness.

    A dataset that never sent a record counts from when quality first saw it. The stall is stored
    as a window of kind ``freshness`` (no records; the other dimensions carried over from the last
    window) the first time, and again each time timeliness fell by the announcement threshold.
    """
    found: dict[str, float] = {}
    for dataset in catalog.datasets():
        contract = catalog.current_contract(dataset.id)
        if not dataset.scored or contract is None or not settings.follows(dataset.id):
            continue
        state = dataset_state(session=session, dataset_id=dataset.id, now=now)
        last = aware(state.last_event_at) or aware(state.first_seen_at) or now
        age = max(0.0, (now - last).total_seconds())
        found[dataset.id] = age
        frequency = contract.frequency_s or settings.default_frequency_s
        if age <= frequency:
            continue
        previous = session.get(QualityWindow, state.last_window_id) if state.last_window_id else None
        share = (previous.details or {}).get("on_time_share") if previous is not None else None
        on_time_share = float(share) if isinstance(share, (int, float)) else 1.0
        timeliness = round(100.0 * on_time_share * scoring.freshness_factor(age, frequency), 3)
        opened = state.freshness_breach_id is None
        if opened:
            state.freshness_breach_id = _open_breach(
                session,
                outbox,
                dataset.id,
                "freshness",
                now,
                target_s=frequency,
                observed_s=age,
                details={"last_event_at": _iso(last), "never_received": state.last_event_at is None},
            )
        dropped = (
            previous is None
            or previous.timeliness is None
            or previous.timeliness - timeliness >= max(settings.score_change_threshold, 1.0)
        )
        if not (opened or dropped):
            continue
        scores: dict[str, float | None] = {
            name: getattr(previous, name) if previous is not None else None for name in DIMENSIONS
        }
        scores["timeliness"] = timeliness
        silent = (
            "no record has arrived" if state.last_event_at is None else f"the last event is from {_iso(last)}"
        )
        row = QualityWindow(
            dataset_id=dataset.id,
            contract_version=contract.version,
            kind="freshness",
            opened_at=last,
            closed_at=now,
            records=0,
            accepted=0,
            rejected=0,
            duplicates=0,
            late=0,
            overall=scoring.overall(scores, settings.weights_of(dataset.id)),
            freshness_s=age,
            problems=[
                f"the feed has stalled: {silent}, {age:.0f} s ago, beyond the SLA frequency of {frequency:g} s"
            ],
            details={
                "frequency_s": frequency,
                "on_time_share": on_time_share,
                "carried_from_window": previous.id if previous else None,
            },
            **scores,
        )
        session.add(row)
        session.flush()
        _make_current(session, outbox, state, row, settings)
    return found
