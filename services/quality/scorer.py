"""Scoring a closed window: every dimension its records, the contract's GX suite and its SLA
allow, with masked evidence. Pure computation outside any transaction: it reads no database and
writes nothing; :mod:`services.quality.store` stores what it returns. The formulas are in
:mod:`services.quality.scoring`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from services.common.clock import utcnow
from services.quality import scoring
from services.quality.expectations import TABLE_LEVEL, GreatExpectations, RuleResult
from services.quality.masking import REDACTED, evidence_key, mask_across
from services.quality.projection import ContractVersion, QualityCatalog
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
