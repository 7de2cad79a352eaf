"""The formulas of the quality dimensions: pure functions of counts, each 0-100 or None.

None means "not measurable in this window" (no contract, no primary key, the suite failed): it is
never turned into 100, and the window's ``problems`` say why. The same formulas are in the README
(section Quality):

- **validity** = 100 x accepted / (accepted + rejected), from the records on ``ds.`` (accepted by
  ingest) and on ``dlq.`` (rejected).
- **completeness** = 100 x R x I. R is the share of records (accepted and rejected) with every
  required field present and not null; a dead letter counts as incomplete when ingest rejected it
  for a ``required`` field. I is the mean, over the contract's declared-important fields (those
  with a ``nullValues`` / ``missingValues`` rule), of min(1, non-null share / tolerated share):
  a field within its tolerance costs nothing. Without such fields I = 1.
- **uniqueness** = 100 x (1 - duplicates / accepted): a record is a duplicate when an earlier
  record of the window or of the rolling 24 h view has the same primary key under another event id
  (a redelivered event, same id, is not a duplicate).
- **conformity** = 100 x (1 - min(1, F / N)), N the accepted records, F the failures of the value
  rules (ranges, sets, patterns, lengths, custom expectations): the sum of GX's unexpected counts
  of the column-map rules (which leave nulls out, as the rules say), plus N / R for each failed
  aggregate rule (a median, a row count), R the number of value rules run.
- **timeliness** = 100 x T x Fr. T is the share of records whose lateness (ingest time - event
  time) is within the contract's SLA latency; Fr = 1 while freshness (now - last event time) is
  within the SLA frequency, falling linearly to 0 at twice the frequency.
- **overall** = sum(w_d x s_d) / sum(w_d) over the dimensions that have a score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def _clamp(value: float) -> float:
    return round(max(0.0, min(100.0, value)), 3)


def validity(accepted: int, rejected: int) -> float | None:
    total = accepted + rejected
    if total <= 0:
        return None
    return _clamp(100.0 * accepted / total)


@dataclass(frozen=True)
class ImportantField:
    """A field the contract declared important: its non-null share and the share it tolerates."""

    name: str
    non_null_share: float
    tolerated_share: float = 1.0

    @property
    def factor(self) -> float:
        if self.tolerated_share <= 0:
            return 1.0
        return min(1.0, self.non_null_share / self.tolerated_share)


def completeness(records: int, incomplete: int, important: Iterable[ImportantField] = ()) -> float | None:
    if records <= 0:
        return None
    required_share = 1.0 - min(records, max(0, incomplete)) / records
    factors = [field.factor for field in important]
    important_factor = sum(factors) / len(factors) if factors else 1.0
    return _clamp(100.0 * required_share * important_factor)


def uniqueness(accepted: int, duplicates: int) -> float | None:
    if accepted <= 0:
        return None
    return _clamp(100.0 * (1.0 - min(accepted, max(0, duplicates)) / accepted))


@dataclass(frozen=True)
class RuleOutcome:
    """What one value rule found: unexpected rows (map rules) or a failed aggregate."""

    unexpected: int = 0
    aggregate: bool = False
    success: bool = True


def conformity(records: int, outcomes: Iterable[RuleOutcome]) -> float | None:
    ran = list(outcomes)
    if records <= 0 or not ran:
        return None
    failures = 0.0
    for outcome in ran:
        if outcome.aggregate:
            failures += 0.0 if outcome.success else records / len(ran)
        else:
            failures += max(0, outcome.unexpected)
    return _clamp(100.0 * (1.0 - min(1.0, failures / records)))


def freshness_factor(freshness_s: float | None, frequency_s: float) -> float:
    """1 within the SLA frequency, then down linearly to 0 at twice the frequency."""
    if freshness_s is None:
        return 0.0
    if freshness_s <= frequency_s:
        return 1.0
    return max(0.0, 1.0 - (freshness_s - frequency_s) / frequency_s)


def timeliness(*, on_time: int, measured: int, freshness_s: float | None, frequency_s: float) -> float | None:
    """``measured`` records had an event time; ``on_time`` of them were within the latency."""
    factor = freshness_factor(freshness_s, frequency_s)
    if measured <= 0:
        if freshness_s is None:
            return None
        return _clamp(100.0 * factor)
    return _clamp(100.0 * (on_time / measured) * factor)


def overall(scores: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    total = sum(max(0.0, weights.get(name, 0.0)) for name, score in scores.items() if score is not None)
    if total <= 0:
        return None
    return _clamp(
        sum(max(0.0, weights.get(name, 0.0)) * score for name, score in scores.items() if score is not None)
        / total
    )


def utilization(
    *,
    active_subscribers: int,
    target_subscribers: int,
    days_since_use: float | None,
    idle_days: float,
    grants_active: int,
    grants_used: int,
) -> float:
    """0-100 from reach (40), recency (30) and the share of active grants in use (30).

    reach = min(1, active subscribers / target); recency = 1 if used within a day, falling
    linearly to 0 at ``idle_days`` (0 if never used); grant use = used active grants / active
    grants (without active grants it follows recency, so an open dataset is judged by its use).
    """
    reach = min(1.0, active_subscribers / target_subscribers) if target_subscribers > 0 else 0.0
    if days_since_use is None:
        recency = 0.0
    elif days_since_use <= 1.0:
        recency = 1.0
    else:
        recency = max(0.0, 1.0 - (days_since_use - 1.0) / max(idle_days - 1.0, 1e-9))
    grant_use = grants_used / grants_active if grants_active > 0 else recency
    return _clamp(100.0 * (0.4 * reach + 0.3 * recency + 0.3 * grant_use))
