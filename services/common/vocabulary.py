"""The value sets of the platform's API that both its services and its clients spell.

The catalog's request and response shapes use these enums, and the CLI offers the same choices by
importing them from here (it imports no service module), so a value added to the API is a choice
on the command line at once.
"""

from __future__ import annotations

from enum import StrEnum


class DepartmentKind(StrEnum):
    commission = "commission"
    bureau = "bureau"
    district = "district"
    enterprise = "enterprise"


class ScenarioStatus(StrEnum):
    active = "active"
    suspended = "suspended"
    retired = "retired"


class ScenarioStage(StrEnum):
    """Where a scenario is in the city's programme (docs/authorization.md, "Scenario stages").

    Every stage but ``suspended`` and ``retired`` keeps the scenario ``active`` (its keys work, it
    may file and submit requests); ``suspended`` and ``retired`` are the statuses of the same name.
    """

    proposed = "proposed"
    approved = "approved"
    building = "building"
    live = "live"
    suspended = "suspended"
    retired = "retired"


class PurposeCategory(StrEnum):
    """Why a scenario wants data: the fixed list approvers and scorecards group by."""

    public_service = "public_service"
    research = "research"
    city_operations = "city_operations"
    commercial = "commercial"
    other = "other"


class AccessRequestStatus(StrEnum):
    """``draft``: prepared for a scenario by someone else (an answer to a need, a selected proposal);
    the scenario submits it as it is or changed (then ``pending``), or withdraws it."""

    draft = "draft"
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    withdrawn = "withdrawn"


class GrantStatus(StrEnum):
    """Stored states, and ``expired``, which is never stored: computed from ``expires_at``."""

    active = "active"
    suspended = "suspended"
    revoked = "revoked"
    expired = "expired"


class NeedStatus(StrEnum):
    """``held``: a resident's need waiting for an operator; ``rejected``: the operator turned it
    down. An open need is answered by an ``offer`` (``offered``), a ``commit`` (``committed``, then
    ``fulfilled`` when the contract lands) or a ``decline`` (``declined``)."""

    held = "held"
    open = "open"
    offered = "offered"
    committed = "committed"
    fulfilled = "fulfilled"
    declined = "declined"
    rejected = "rejected"


class Frequency(StrEnum):
    """How often the need arises for the people it serves (高频: ``high``)."""

    high = "high"
    medium = "medium"
    low = "low"


class Urgency(StrEnum):
    """How pressing it is (急难: ``urgent``)."""

    urgent = "urgent"
    pressing = "pressing"
    normal = "normal"


class ApplicantStatus(StrEnum):
    pending = "pending"
    vetted = "vetted"
    refused = "refused"


class ObjectiveKind(StrEnum):
    """How a scenario's objective is measured: ``dataset-use``, each dataset delivered at least
    once in the period (no target); ``delivered-records``, at least ``target`` records of each;
    ``active-days``, at least ``target`` distinct UTC days with a delivery of each;
    ``quality-floor``, each dataset's overall quality score of the period at least ``target``
    (0-100); ``outcome``, a KPI the scenario reports itself, ``target`` per reporting period."""

    dataset_use = "dataset-use"
    delivered_records = "delivered-records"
    active_days = "active-days"
    quality_floor = "quality-floor"
    outcome = "outcome"


class ObjectiveStatus(StrEnum):
    active = "active"
    withdrawn = "withdrawn"


class KpiDirection(StrEnum):
    """Whether an outcome KPI meets its target at or above it, or at or below it."""

    at_least = "at-least"
    at_most = "at-most"


class VerdictResult(StrEnum):
    meets = "meets"
    partly = "partly"
    does_not_meet = "does-not-meet"


class ReasonResult(StrEnum):
    """What an evaluator found of one objective."""

    met = "met"
    not_met = "not-met"
    no_data = "no-data"
