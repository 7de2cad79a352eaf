"""The contract's service levels (ODCS ``slaProperties``) in seconds, which quality's timeliness uses."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from services.catalog.contracts.conventions import (
    EXPECTED_RATE_PROPERTY,
    MAX_PARTITIONS,
    PARTITIONS_PROPERTY,
    RECORDS_PER_PARTITION,
)
from services.catalog.contracts.parsed import ParsedContract
from services.common.i18n import N_, Sentence


@dataclass(frozen=True)
class SlaTargets:
    """The contract's service levels in seconds, None when the contract does not set one."""

    frequency_s: float | None = None
    """How often new data is expected: timeliness alerts when nothing arrived for this long."""
    latency_s: float | None = None
    """Longest delay between an event happening and its record being available."""
    retention_s: float | None = None
    """How long records are kept (topic retention)."""
    expected_rate: float | None = None
    """Records per second the contract expects at its peak (``citybase.expectedRate``)."""
    partitions: int | None = None
    """Partitions of the dataset's topics: ``citybase.partitions``, else one per
    ``RECORDS_PER_PARTITION`` of the expected rate; None leaves ingest's default."""


SLA_NAMES = {
    "frequency": "frequency",
    "fy": "frequency",
    "latency": "latency",
    "ly": "latency",
    "freshness": "latency",
    "retention": "retention",
    "re": "retention",
}
_UNIT_SECONDS = {
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 604800.0),
    # Calendar units have no fixed length; SLAs need a number, so a month is 30 days, a year 365.
    **dict.fromkeys(("mo", "month", "months"), 30 * 86400.0),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * 86400.0),
}
_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def duration_s(value: Any, unit: str | None) -> float:
    """Seconds in an SLA value: a number with a unit (``4``, ``d``) or an ISO 8601 duration.

    Raises :class:`ValueError` for anything else, including a number without a unit: guessing
    between seconds and days is how an SLA ends up 86 400 times too strict.
    """
    if isinstance(value, str) and value.strip().upper().startswith("P"):
        if unit:
            raise ValueError(
                Sentence(N_("give an ISO 8601 duration without a unit, or a number with a unit"))
            )
        match = _ISO_DURATION.match(value.strip().upper())
        if match is None:
            raise ValueError(
                Sentence(N_("%(value)r is not an ISO 8601 duration such as PT15M or P30D"), value=value)
            )
        seconds = sum(
            float(match[part] or 0) * _UNIT_SECONDS[part] for part in ("y", "mo", "w", "d", "h", "m", "s")
        )
    else:
        if isinstance(value, bool) or value is None:
            raise ValueError(Sentence(N_("a duration is a number with a unit or an ISO 8601 duration")))
        try:
            amount = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                Sentence(N_("%(value)r is not a number or an ISO 8601 duration"), value=value)
            ) from None
        if unit is None:
            raise ValueError(Sentence(N_("a unit is required (ms, s, m, h, d, w, mo, y or their names)")))
        factor = _UNIT_SECONDS.get(unit.strip().lower())
        if factor is None:
            raise ValueError(
                Sentence(N_("unknown unit %(unit)r; use ms, s, m, h, d, w, mo, y or their names"), unit=unit)
            )
        seconds = amount * factor
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(Sentence(N_("a duration must be positive")))
    return seconds


def sla_targets(contract: ParsedContract) -> SlaTargets:
    """Frequency, latency and retention from ``slaProperties`` (names case-insensitive, ODCS
    synonyms ``fy``, ``ly``, ``re`` and the older ``freshness`` accepted); the first entry of each
    counts, as an ``element``-specific SLA cannot apply to a whole stream anyway."""
    targets: dict[str, float] = {}
    for sla in contract.model.slaProperties or ():
        name = SLA_NAMES.get((sla.property or "").strip().lower())
        if name is not None and name not in targets:
            targets[name] = duration_s(sla.value, sla.unit)
    rate = _positive(_custom(contract, EXPECTED_RATE_PROPERTY))
    explicit = _custom(contract, PARTITIONS_PROPERTY)
    partitions = (
        explicit
        if isinstance(explicit, int) and not isinstance(explicit, bool) and 1 <= explicit <= MAX_PARTITIONS
        else (min(MAX_PARTITIONS, max(1, math.ceil(rate / RECORDS_PER_PARTITION))) if rate else None)
    )
    return SlaTargets(
        frequency_s=targets.get("frequency"),
        latency_s=targets.get("latency"),
        retention_s=targets.get("retention"),
        expected_rate=rate,
        partitions=partitions,
    )


def _custom(contract: ParsedContract, name: str) -> Any:
    for custom in contract.model.customProperties or ():
        if custom.property == name:
            return custom.value
    return None


def _positive(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None
