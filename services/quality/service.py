"""Quality's business rules: scoring a window, storing it with its evidence, announcing changes
and SLA breaches, finding stalled feeds, and answering the score queries of the API.

A closed window is scored outside any transaction (:class:`Scorer`, GX included), then stored in
one unit of work with its rule evidence, the dataset's state and the events it causes (through
quality's outbox): a score that moved by at least ``score_change_threshold`` points and every SLA
breach opened or resolved. Only after that commit does the worker commit the window's offsets.
The formulas are in :mod:`services.quality.scoring`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from services.common import db, quality_events
from services.common.auth import Principal, PrincipalKind
from services.common.clock import aware, utcnow
from services.common.envelope import CloudEvent
from services.common.outbox import Outbox
from services.quality import scoring
from services.quality.exceptions import DatasetNotFound, InvalidTimeRange
from services.quality.expectations import TABLE_LEVEL, GreatExpectations, RuleResult
from services.quality.masking import REDACTED, evidence_key, mask_across
from services.quality.metrics import QualityMetrics
from services.quality.models import (
    QualityDatasetState,
    QualityRuleResult,
    QualitySlaBreach,
    QualityWindow,
)
from services.quality.projection import ContractVersion, DatasetState, QualityCatalog
from services.quality.settings import DIMENSIONS, QualitySettings
from services.quality.windows import RollingKeys, Window, WindowScore, key_of

log = logging.getLogger(__name__)


Clock = Callable[[], datetime]


class Scorer:
    """Scores closed windows; keeps each dataset's rolling view of primary keys in memory."""

    def __init__(
        self,
        catalog: QualityCatalog,
        gx: GreatExpectations,
        settings: QualitySettings,
        clock: Clock = utcnow,
    ) -> None:
        self.catalog = catalog
        self.gx = gx
        self.settings = settings
        self.clock = clock
        self._rolling: dict[str, RollingKeys] = {}
        secret = settings.evidence_key
        self._evidence_key = evidence_key(secret.get_secret_value() if secret is not None else None)

    def rolling(self, dataset_id: str) -> RollingKeys:
        keys = self._rolling.get(dataset_id)
        if keys is None:
            keys = self._rolling[dataset_id] = RollingKeys(
                self.settings.rolling_s, self.settings.rolling_max_keys
            )
        return keys

    def score(self, window: Window, last_event_at: datetime | None = None) -> WindowScore:
        """Every dimension the window allows; what it does not allow is None and a problem."""
        now = self.clock()
        problems: list[str] = []
        dataset = self.catalog.dataset(window.dataset_id)
        if dataset is None:
            problems.append("the dataset is unknown to quality's catalog (not announced yet?)")
        named = window.contract_version
        contract = self.catalog.contract(window.dataset_id, named) or self.catalog.current_contract(
            window.dataset_id
        )
        if contract is None:
            problems.append("no contract version: completeness, uniqueness and conformity cannot be measured")
        elif named is not None and contract.version != named:
            problems.append(
                f"the records name contract version {named}, unknown to quality; "
                f"scored against {contract.version}"
            )
        rows = window.rows
        if window.unreadable:
            problems.append(f"{window.unreadable} accepted records are not JSON objects (counted invalid)")
        records = window.size
        scores: dict[str, float | None] = dict.fromkeys(DIMENSIONS)
        scores["validity"] = scoring.validity(len(rows), window.rejected + window.unreadable)
        details: dict[str, Any] = {
            "closed_because": window.closed_because,
            "rejected_by_rule": dict(window.rejected_rules.most_common(20)),
        }
        frame = _frame(rows, contract, problems)
        results, gx_failed = self._expectations(contract, frame, problems)
        sensitive = contract.sensitive_fields if contract is not None else {}
        for result in results:
            self._mask_evidence(result, sensitive)
        if contract is not None:
            scores["completeness"] = self._completeness(window, contract, frame, results, details)
            scores["uniqueness"] = self._uniqueness(window, contract, now, problems, details)
            if frame is not None and not gx_failed:
                scores["conformity"] = _conformity(len(rows), results, problems)
        elif not rows and not window.rejected:
            problems.append("the window holds no readable record")
        timing = _timing(window, contract, self.settings, now, last_event_at, problems)
        scores["timeliness"] = timing.score
        details.update(timing.details)
        weights = self.settings.weights_of(window.dataset_id)
        overall = scoring.overall(scores, weights)
        unmeasured = [name for name, value in scores.items() if value is None]
        if unmeasured:
            details["unmeasured"] = unmeasured
        return WindowScore(
            dataset_id=window.dataset_id,
            contract_version=contract.version if contract is not None else named,
            opened_at=window.opened_at,
            closed_at=now,
            records=records,
            accepted=window.accepted,
            rejected=window.rejected,
            scores=scores,
            overall=overall,
            duplicates=int(details.get("duplicates", 0)),
            late=timing.late,
            measured=timing.measured,
            freshness_s=timing.freshness_s,
            lateness_p95_s=timing.lateness_p95_s,
            frequency_s=timing.frequency_s,
            latency_s=timing.latency_s,
            last_event_at=timing.last_event_at,
            latency_breached=timing.measured > 0
            and timing.late / timing.measured > self.settings.late_share_breach,
            problems=problems,
            details=details,
            rules=results,
        )

    def _mask_evidence(self, result: RuleResult, sensitive: Mapping[str, Any]) -> None:
        """Mask a rule's failing values by the rule of every column it reads; an aggregate it
        observed over a sensitive column (a set of values, a maximum) is redacted."""
        columns = result.rule.columns
        if not any(column in sensitive for column in columns):
            return
        result.examples = [
            mask_across(value, columns, sensitive, self._evidence_key) for value in result.examples
        ]
        if result.observed_value is not None:
            result.observed_value = REDACTED

    def _expectations(
        self, contract: ContractVersion | None, frame: pd.DataFrame | None, problems: list[str]
    ) -> tuple[list[RuleResult], bool]:
        if contract is None or frame is None:
            return [], contract is not None
        try:
            compiled = contract.suite(self.gx)
            problems.extend(compiled.problems)
            results = self.gx.validate(compiled, frame, self.settings.example_values)
        except Exception as error:
            log.exception("GX failed on a window of %s", contract.dataset_id)
            problems.append(
                f"Great Expectations failed on this window: {type(error).__name__}: {error}"[:400]
            )
            return [], True
        for result in results:
            if result.error is not None:
                where = f" on {result.rule.column}" if result.rule.column else ""
                problems.append(
                    f"rule {result.rule.name} ({result.rule.type}{where}) could not run: {result.error}"
                )
        return results, False

    def _completeness(
        self,
        window: Window,
        contract: ContractVersion,
        frame: pd.DataFrame | None,
        results: Sequence[RuleResult],
        details: dict[str, Any],
    ) -> float | None:
        incomplete = 0
        required = [name for name in contract.required if frame is not None and name in frame.columns]
        if frame is not None and required and len(frame):
            incomplete = int(frame[required].isna().any(axis=1).sum())
        important = []
        for result in results:
            rule = result.rule
            if (
                rule.scored_as != "completeness"
                or rule.source != "quality"
                or rule.column is None
                or not result.element_count
                or result.unexpected_count is None
            ):
                continue
            tolerated = rule.mostly
            if rule.max_unexpected_count is not None:
                tolerated = max(0.0, 1.0 - rule.max_unexpected_count / result.element_count)
            important.append(
                scoring.ImportantField(
                    rule.column, 1.0 - result.unexpected_count / result.element_count, tolerated
                )
            )
        details["incomplete"] = incomplete + window.rejected_incomplete
        details["missing_by_field"] = dict(window.rejected_missing.most_common(20))
        details["important_fields"] = [
            {
                "field": f.name,
                "non_null_share": round(f.non_null_share, 4),
                "tolerated_share": f.tolerated_share,
            }
            for f in important
        ]
        return scoring.completeness(
            len(window.rows) + window.rejected, incomplete + window.rejected_incomplete, important
        )

    def _uniqueness(
        self,
        window: Window,
        contract: ContractVersion,
        now: datetime,
        problems: list[str],
        details: dict[str, Any],
    ) -> float | None:
        if not contract.primary_key:
            problems.append("the contract declares no primary key: uniqueness cannot be measured")
            return None
        keys = [key_of(row, contract.primary_key) for row in window.rows]
        rolling = self.rolling(window.dataset_id)
        in_window, in_view, repeated = rolling.duplicates(keys, window.event_ids, now.timestamp())
        without_key = sum(1 for key in keys if key is None)
        if without_key:
            problems.append(f"{without_key} records lack part of the primary key")
        if rolling.evicted:
            details["rolling_keys_evicted"] = rolling.evicted
        details.update(
            duplicates=in_window + in_view,
            duplicates_in_window=in_window,
            duplicates_in_rolling_view=in_view,
            repeated_keys=[
                mask_across(key, contract.primary_key, contract.sensitive_fields, self._evidence_key)
                for key in repeated[: self.settings.example_values]
            ],
        )
        return scoring.uniqueness(len(window.rows), in_window + in_view)


def _frame(
    rows: list[dict[str, Any]], contract: ContractVersion | None, problems: list[str]
) -> pd.DataFrame | None:
    if contract is None or not rows:
        return None
    try:
        return pd.DataFrame.from_records(rows, columns=list(contract.properties) or None)
    except Exception as error:
        problems.append(f"the records do not fit a table: {type(error).__name__}: {error}"[:400])
        return None


def _conformity(records: int, results: Sequence[RuleResult], problems: list[str]) -> float | None:
    outcomes = [
        scoring.RuleOutcome(
            unexpected=result.unexpected_count or 0,
            aggregate=result.aggregate,
            success=bool(result.success),
        )
        for result in results
        if result.rule.scored_as == "conformity"
        and result.rule.type not in TABLE_LEVEL
        and result.error is None
        and result.success is not None
    ]
    if not outcomes:
        problems.append("no value rule of the contract could be run: conformity cannot be measured")
        return None
    return scoring.conformity(records, outcomes)


@dataclass
class _Timing:
    score: float | None
    measured: int
    late: int
    freshness_s: float | None
    lateness_p95_s: float | None
    frequency_s: float
    latency_s: float
    last_event_at: datetime | None
    details: dict[str, Any]


def _timing(
    window: Window,
    contract: ContractVersion | None,
    settings: QualitySettings,
    now: datetime,
    last_event_at: datetime | None,
    problems: list[str],
) -> _Timing:
    frequency = contract.frequency_s if contract is not None and contract.frequency_s else None
    latency = contract.latency_s if contract is not None and contract.latency_s else None
    if contract is not None and frequency is None:
        problems.append(
            f"the contract sets no SLA frequency; freshness is judged against {settings.default_frequency_s:g} s"
        )
    if contract is not None and latency is None:
        problems.append(
            f"the contract sets no SLA latency; lateness is judged against {settings.default_latency_s:g} s"
        )
    frequency = frequency or settings.default_frequency_s
    latency = latency or settings.default_latency_s
    measured = on_time = 0
    p95: float | None = None
    newest_ms: int | None = None
    event_fields = contract.event_time_fields if contract is not None else ()
    event_field = " or ".join(event_fields) or None
    if window.rows and event_field is not None:
        parsed = _event_times(window.rows, event_fields)
        valid = parsed.notna().to_numpy()
        event_ms = parsed.dt.as_unit("ms").to_numpy(dtype="datetime64[ms]").astype(np.int64)[valid]
        ingest = np.asarray(window.ingest_ms, dtype=np.int64)[valid]
        measured = int(valid.sum())
        if measured:
            lateness_ms = ingest - event_ms
            on_time = int((lateness_ms <= latency * 1000).sum())
            p95 = round(float(np.percentile(lateness_ms, 95)) / 1000, 3)
            newest_ms = int(event_ms.max())
        if measured < len(window.rows):
            problems.append(f"{len(window.rows) - measured} records have no readable {event_field}")
    elif window.rows:
        problems.append(
            "the contract has no date-time field for the event time: lateness is not measured and "
            "freshness counts from the ingest time"
        )
        newest_ms = max(window.ingest_ms)
    newest = datetime.fromtimestamp(newest_ms / 1000, UTC) if newest_ms is not None else None
    if last_event_at is not None and (newest is None or last_event_at > newest):
        newest = last_event_at
    freshness = max(0.0, (now - newest).total_seconds()) if newest is not None else None
    score = scoring.timeliness(
        on_time=on_time, measured=measured, freshness_s=freshness, frequency_s=frequency
    )
    details = {
        "event_time_field": event_field,
        "measured": measured,
        "on_time": on_time,
        "on_time_share": round(on_time / measured, 6) if measured else None,
        "frequency_s": frequency,
        "latency_s": latency,
    }
    return _Timing(score, measured, measured - on_time, freshness, p95, frequency, latency, newest, details)


def _event_times(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> pd.Series:
    """Each row's event time (UTC), from the first of ``fields`` holding a readable time; NaT if none."""

    def parse(name: str) -> pd.Series:
        return pd.to_datetime(
            pd.Series([row.get(name) for row in rows], dtype=object),
            utc=True,
            errors="coerce",
            format="ISO8601",
        )

    times = parse(fields[0])
    for name in fields[1:]:
        times = times.fillna(parse(name))
    return times


# --- storing ------------------------------------------------------------------------------------


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
        """Score and store closed windows; returns once every result is committed."""
        scored = []
        for window in windows:
            started = time.perf_counter()
            last_event_at = self._last_event_at(window.dataset_id)
            result = self.scorer.score(window, last_event_at)
            with self._state_lock, db.unit_of_work(self.sessions) as session:
                store_window(session, self.outbox, result, self.settings)
                opened = opened_breaches(session)
            self._count_breaches(opened)
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
        """The timer's check: a feed silent beyond its SLA frequency drops timeliness and breaches."""
        with self._state_lock, db.unit_of_work(self.sessions) as session:
            found = check_freshness(session, self.outbox, self.catalog, self.settings, self.clock())
            opened = opened_breaches(session)
        self._count_breaches(opened)
        for dataset_id, seconds in found.items():
            self.metrics.freshness.labels(dataset_id).set(seconds)
        self.metrics.describe_datasets(self.catalog, self.settings)
        return found


def store_window(session: Session, outbox: Outbox, score: WindowScore, settings: QualitySettings) -> int:
    """Insert the window and its evidence, update the dataset's state, announce what changed."""
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
    state = dataset_state(session, score.dataset_id, score.closed_at)
    state.last_record_at = score.closed_at
    if score.last_event_at is not None and (
        state.last_event_at is None or aware(state.last_event_at) < score.last_event_at
    ):
        state.last_event_at = score.last_event_at
    state.last_window_id = row.id
    state.last_overall = score.overall
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
    _announce_score(session, outbox, state, row, settings)
    return row.id


def dataset_state(session: Session, dataset_id: str, now: datetime) -> QualityDatasetState:
    state = session.get(QualityDatasetState, dataset_id)
    if state is None:
        state = QualityDatasetState(dataset_id=dataset_id, first_seen_at=now, updated_at=now)
        session.add(state)
        session.flush()
    return state


def _announce_score(
    session: Session,
    outbox: Outbox,
    state: QualityDatasetState,
    row: QualityWindow,
    settings: QualitySettings,
) -> None:
    previous = state.announced_overall
    if row.overall is None:
        return
    if previous is not None and abs(row.overall - previous) < settings.score_change_threshold:
        return
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
            "overall": row.overall,
            "previous_overall": previous,
            "change": round(row.overall - previous, 3) if previous is not None else None,
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
    _publish(session, outbox, quality_events.SLA_BREACH, dataset_id, _breach_data(breach, "open"))
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
    data = _breach_data(breach, "resolved")
    data["observed_s"] = observed_s
    _publish(session, outbox, quality_events.SLA_BREACH, breach.dataset_id, data)


def _breach_data(breach: QualitySlaBreach, state: str) -> dict[str, Any]:
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
    session: Session, outbox: Outbox, catalog: QualityCatalog, settings: QualitySettings, now: datetime
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
        state = dataset_state(session, dataset.id, now)
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
        state.last_window_id = row.id
        state.last_overall = row.overall
        _announce_score(session, outbox, state, row, settings)
    return found


# --- queries of the API -------------------------------------------------------------------------


def known_dataset(session: Session, catalog: QualityCatalog, dataset_id: str) -> None:
    """404 unless the catalog announced the dataset or quality has scored it."""
    if catalog.dataset(dataset_id) is not None:
        return
    if session.get(QualityDatasetState, dataset_id) is None:
        raise DatasetNotFound(f"no dataset {dataset_id!r}")


def scores_of(row: QualityWindow) -> dict[str, float | None]:
    return {**{name: getattr(row, name) for name in DIMENSIONS}, "overall": row.overall}


def window_summary(row: QualityWindow) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "contract_version": row.contract_version,
        "opened_at": aware(row.opened_at),
        "closed_at": aware(row.closed_at),
        "records": row.records,
        "accepted": row.accepted,
        "rejected": row.rejected,
        "duplicates": row.duplicates,
        "late": row.late,
        "freshness_s": row.freshness_s,
        "lateness_p95_s": row.lateness_p95_s,
        "scores": scores_of(row),
        "problems": list(row.problems or []),
        "details": row.details or {},
    }


RECORD_EVIDENCE_READERS = frozenset({PrincipalKind.operator, PrincipalKind.admin})
"""Who reads the record-level evidence (failing values, repeated keys) of every dataset; the
owning department and its approvers read their own datasets', and anyone an ``open`` dataset's."""


def record_evidence_withheld(reader: Principal, dataset: DatasetState | None) -> str | None:
    """Why ``reader`` may not see the record-level evidence of ``dataset``, or None if it may.

    Even masked, failing values and repeated keys are record data: of a ``conditional`` or
    ``restricted`` dataset they are for its owner and the platform's operators, not for every
    scenario or department that can read scores.
    """
    if reader.kind in RECORD_EVIDENCE_READERS:
        return None
    if dataset is None:
        return "the dataset is not known to quality yet: its record-level evidence is for operators"
    if dataset.classification == "open":
        return None
    if reader.kind in (PrincipalKind.department, PrincipalKind.approver) and (
        reader.department_id is not None and reader.department_id == dataset.owner_department_id
    ):
        return None
    return (
        f"the dataset is {dataset.classification}: failing values and repeated keys are shown to "
        "its owning department and to operators only"
    )


def _without_record_evidence(summary: dict[str, Any], withheld: str | None) -> dict[str, Any]:
    if withheld is not None:
        summary["details"] = {
            name: value for name, value in summary["details"].items() if name != "repeated_keys"
        }
    return summary


def latest_quality(
    session: Session,
    catalog: QualityCatalog,
    settings: QualitySettings,
    dataset_id: str,
    now: datetime,
    reader: Principal,
) -> dict[str, Any]:
    """The latest scores per dimension with their evidence per rule, the rolling 24 h view and
    the open SLA breaches of one dataset. The record-level evidence (failing values, repeated
    keys) is left out for a reader :func:`record_evidence_withheld` names a reason for."""
    known_dataset(session, catalog, dataset_id)
    dataset = catalog.dataset(dataset_id)
    withheld = record_evidence_withheld(reader, dataset)
    state = session.get(QualityDatasetState, dataset_id)
    latest = session.scalars(
        sa.select(QualityWindow)
        .where(QualityWindow.dataset_id == dataset_id)
        .order_by(QualityWindow.closed_at.desc(), QualityWindow.id.desc())
        .limit(1)
    ).first()
    evidence_window = latest
    if latest is not None and latest.kind != "window":
        evidence_window = session.scalars(
            sa.select(QualityWindow)
            .where(QualityWindow.dataset_id == dataset_id, QualityWindow.kind == "window")
            .order_by(QualityWindow.closed_at.desc(), QualityWindow.id.desc())
            .limit(1)
        ).first()
    rules = []
    if evidence_window is not None:
        for result in session.scalars(
            sa.select(QualityRuleResult)
            .where(QualityRuleResult.window_id == evidence_window.id)
            .order_by(QualityRuleResult.rule_index)
        ):
            rules.append(
                {
                    "rule": result.rule,
                    "expectation_type": result.expectation_type,
                    "column": result.column,
                    "dimension": result.dimension,
                    "success": result.success,
                    "element_count": result.element_count,
                    "unexpected_count": result.unexpected_count,
                    "missing_count": result.missing_count,
                    "observed_value": result.observed_value,
                    "examples": [] if withheld else (result.examples or []),
                    "error": result.error,
                }
            )
    breaches = session.scalars(
        sa.select(QualitySlaBreach)
        .where(QualitySlaBreach.dataset_id == dataset_id, QualitySlaBreach.resolved_at.is_(None))
        .order_by(QualitySlaBreach.opened_at)
    ).all()
    last_event = aware(state.last_event_at) if state is not None else None
    problems = list(latest.problems or []) if latest is not None else []
    if latest is None:
        problems.append("no window scored yet: no record has reached quality")
    return {
        "dataset_id": dataset_id,
        "domain_id": dataset.domain_id if dataset else None,
        "owner_department_id": dataset.owner_department_id if dataset else None,
        "scores": scores_of(latest) if latest is not None else dict.fromkeys([*DIMENSIONS, "overall"]),
        "weights": settings.weights_of(dataset_id),
        "window": _without_record_evidence(window_summary(latest), withheld) if latest is not None else None,
        "record_evidence": {"shown": withheld is None, "withheld_because": withheld},
        "evidence_window_id": evidence_window.id if evidence_window is not None else None,
        "rules": rules,
        "rolling": rolling_view(session, dataset_id, now, settings.rolling_s),
        "last_event_at": last_event,
        "freshness_s": max(0.0, (now - last_event).total_seconds()) if last_event else None,
        "sla_breaches": [_breach_data(breach, "open") for breach in breaches],
        "problems": problems,
    }


_DIMENSION_COLUMNS = [getattr(QualityWindow, name) for name in (*DIMENSIONS, "overall")]


def rolling_view(session: Session, dataset_id: str, now: datetime, span_s: float) -> dict[str, Any]:
    """Record-weighted scores of the windows of the last ``span_s`` (24 h); timeliness the latest."""
    since = now - timedelta(seconds=span_s)
    rows = session.execute(
        sa.select(QualityWindow.records, QualityWindow.kind, QualityWindow.duplicates, *_DIMENSION_COLUMNS)
        .where(QualityWindow.dataset_id == dataset_id, QualityWindow.closed_at >= since)
        .order_by(QualityWindow.closed_at, QualityWindow.id)
    ).all()
    names = [*DIMENSIONS, "overall"]
    weighted = _weighted(
        [
            (max(row.records, 1), {name: getattr(row, name) for name in names})
            for row in rows
            if row.kind == "window"
        ]
    )
    if rows:
        weighted["timeliness"] = rows[-1].timeliness
    return {
        "since": since,
        "windows": len(rows),
        "records": sum(row.records for row in rows),
        "duplicates": sum(row.duplicates for row in rows),
        "scores": weighted,
    }


def _weighted(items: Sequence[tuple[float, dict[str, float | None]]]) -> dict[str, float | None]:
    names = [*DIMENSIONS, "overall"]
    out: dict[str, float | None] = {}
    for name in names:
        pairs = [(weight, scores[name]) for weight, scores in items if scores.get(name) is not None]
        total = sum(weight for weight, _ in pairs)
        out[name] = (
            round(sum(weight * value for weight, value in pairs if value is not None) / total, 3)
            if total
            else None
        )
    return out


def quality_history(
    session: Session,
    catalog: QualityCatalog,
    dataset_id: str,
    start: datetime,
    end: datetime,
    max_points: int,
) -> dict[str, Any]:
    """Scores from ``start`` to ``end``: every window, or record-weighted buckets when they are
    more than ``max_points``."""
    start, end = aware(start), aware(end)
    if end <= start:
        raise InvalidTimeRange("'to' must be after 'from'", path="/query/to")
    known_dataset(session, catalog, dataset_id)
    rows = session.execute(
        sa.select(QualityWindow.closed_at, QualityWindow.records, QualityWindow.kind, *_DIMENSION_COLUMNS)
        .where(
            QualityWindow.dataset_id == dataset_id,
            QualityWindow.closed_at >= start,
            QualityWindow.closed_at < end,
        )
        .order_by(QualityWindow.closed_at, QualityWindow.id)
    ).all()
    names = [*DIMENSIONS, "overall"]
    if len(rows) <= max_points:
        points = [
            {
                "at": aware(row.closed_at),
                "windows": 1,
                "records": row.records,
                "scores": {name: getattr(row, name) for name in names},
                "min_overall": row.overall,
            }
            for row in rows
        ]
        return {
            "dataset_id": dataset_id,
            "from": start,
            "to": end,
            "downsampled": False,
            "bucket_s": None,
            "points": points,
        }
    width = (end - start).total_seconds() / max_points
    buckets: dict[int, list[Any]] = {}
    for row in rows:
        closed = aware(row.closed_at)
        assert closed is not None
        index = min(max_points - 1, int((closed - start).total_seconds() // width))
        buckets.setdefault(index, []).append(row)
    points = []
    for index in sorted(buckets):
        members = buckets[index]
        scores = _weighted(
            [(max(row.records, 1), {name: getattr(row, name) for name in names}) for row in members]
        )
        overalls = [row.overall for row in members if row.overall is not None]
        points.append(
            {
                "at": start + timedelta(seconds=width * (index + 1)),
                "windows": len(members),
                "records": sum(row.records for row in members),
                "scores": scores,
                "min_overall": min(overalls) if overalls else None,
            }
        )
    return {
        "dataset_id": dataset_id,
        "from": start,
        "to": end,
        "downsampled": True,
        "bucket_s": width,
        "points": points,
    }


def rankings(
    session: Session,
    catalog: QualityCatalog,
    *,
    by: str,
    domain: str | None = None,
    department: str | None = None,
) -> list[dict[str, Any]]:
    """Latest overall score per dataset, or the mean per domain or department; worst first.

    A dataset never scored has no score (not 100): it ranks first, as nothing shows it is good.
    """
    states = {state.dataset_id: state for state in session.scalars(sa.select(QualityDatasetState))}
    latest_ids = [state.last_window_id for state in states.values() if state.last_window_id is not None]
    windows = (
        {
            row.dataset_id: row
            for row in session.scalars(sa.select(QualityWindow).where(QualityWindow.id.in_(latest_ids)))
        }
        if latest_ids
        else {}
    )
    entries = []
    for dataset in catalog.datasets():
        if not dataset.scored:
            continue
        if domain is not None and dataset.domain_id != domain:
            continue
        if department is not None and dataset.owner_department_id != department:
            continue
        row = windows.get(dataset.id)
        entries.append(
            {
                "key": dataset.id,
                "dataset_id": dataset.id,
                "domain_id": dataset.domain_id,
                "owner_department_id": dataset.owner_department_id,
                "overall": row.overall if row is not None else None,
                "scores": scores_of(row) if row is not None else None,
                "closed_at": aware(row.closed_at) if row is not None else None,
                "open_breaches": sum(
                    1
                    for breach_id in (
                        (states[dataset.id].freshness_breach_id, states[dataset.id].latency_breach_id)
                        if dataset.id in states
                        else ()
                    )
                    if breach_id is not None
                ),
            }
        )
    if by != "dataset":
        field_name = "domain_id" if by == "domain" else "owner_department_id"
        groups: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            groups.setdefault(str(entry[field_name]), []).append(entry)
        entries = []
        for key, members in groups.items():
            scored = [m["overall"] for m in members if m["overall"] is not None]
            entries.append(
                {
                    "key": key,
                    "datasets": len(members),
                    "scored_datasets": len(scored),
                    "overall": round(sum(scored) / len(scored), 3) if scored else None,
                    "worst_dataset": min(
                        (m for m in members if m["overall"] is not None),
                        key=lambda m: m["overall"],
                        default={"dataset_id": None},
                    )["dataset_id"],
                    "open_breaches": sum(m["open_breaches"] for m in members),
                }
            )
    entries.sort(
        key=lambda e: (e["overall"] is not None, e["overall"] if e["overall"] is not None else 0.0, e["key"])
    )
    for position, entry in enumerate(entries, 1):
        entry["rank"] = position
    return entries


def period_scores(
    session: Session, dataset_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, dict[str, Any]]:
    """Record-weighted scores per dataset over a period, with daily overall and SLA breaches."""
    if not dataset_ids:
        return {}
    rows = session.execute(
        sa.select(
            QualityWindow.dataset_id,
            QualityWindow.closed_at,
            QualityWindow.records,
            QualityWindow.kind,
            *_DIMENSION_COLUMNS,
        )
        .where(
            QualityWindow.dataset_id.in_(list(dataset_ids)),
            QualityWindow.closed_at >= start,
            QualityWindow.closed_at < end,
        )
        .order_by(QualityWindow.closed_at)
    ).all()
    breaches = session.execute(
        sa.select(QualitySlaBreach.dataset_id, QualitySlaBreach.kind, sa.func.count())
        .where(
            QualitySlaBreach.dataset_id.in_(list(dataset_ids)),
            QualitySlaBreach.opened_at >= start,
            QualitySlaBreach.opened_at < end,
        )
        .group_by(QualitySlaBreach.dataset_id, QualitySlaBreach.kind)
    ).all()
    names = [*DIMENSIONS, "overall"]
    out: dict[str, dict[str, Any]] = {
        dataset_id: {
            "windows": 0,
            "records": 0,
            "scores": dict.fromkeys(names),
            "daily": [],
            "sla_breaches": {},
        }
        for dataset_id in dataset_ids
    }
    by_dataset: dict[str, list[Any]] = {}
    for row in rows:
        by_dataset.setdefault(row.dataset_id, []).append(row)
    for dataset_id, members in by_dataset.items():
        entry = out[dataset_id]
        entry["windows"] = len(members)
        entry["records"] = sum(row.records for row in members)
        entry["scores"] = _weighted(
            [(max(row.records, 1), {name: getattr(row, name) for name in names}) for row in members]
        )
        days: dict[str, list[Any]] = {}
        for row in members:
            closed = aware(row.closed_at)
            assert closed is not None
            days.setdefault(closed.strftime("%Y-%m-%d"), []).append(row)
        entry["daily"] = [
            {
                "day": day,
                "overall": _weighted(
                    [
                        (max(r.records, 1), {"overall": r.overall, **dict.fromkeys(DIMENSIONS)})
                        for r in day_rows
                    ]
                )["overall"],
            }
            for day, day_rows in sorted(days.items())
        ]
    for dataset_id, kind, count in breaches:
        out[dataset_id]["sla_breaches"][kind] = int(count)
    return out
