"""Domain errors of authorized operation, each one problem type."""

from __future__ import annotations

from services.common.problems import Conflict, Forbidden, InvalidRequest, NotFound


class ScenarioNotFound(NotFound):
    slug, title = "scenario-not-found", "Scenario not found"


class AccessRequestNotFound(NotFound):
    slug, title = "access-request-not-found", "Access request not found"


class GrantNotFound(NotFound):
    slug, title = "grant-not-found", "Grant not found"


class ScenarioNotActive(Conflict):
    slug, title = "scenario-not-active", "The scenario is suspended or retired"


class DatasetNotAvailable(Conflict):
    slug, title = "dataset-not-available", "The dataset cannot be requested"


class AlreadyDecided(Conflict):
    slug, title = "access-request-decided", "The access request has already been decided"


class GrantRevoked(Conflict):
    slug, title = "grant-revoked", "The grant is revoked"


class GrantExpired(Conflict):
    slug, title = "grant-expired", "The grant has expired"


class GrantStateConflict(Conflict):
    slug, title = "grant-state-conflict", "The grant is not in a state that allows this"


class UnknownFields(InvalidRequest):
    slug, title = "unknown-fields", "Fields not in the dataset's current contract"


class FieldsNotRequested(InvalidRequest):
    slug, title = "fields-not-requested", "A grant may only narrow the fields that were requested"


class DurationTooLong(InvalidRequest):
    slug, title = "duration-too-long", "The duration is beyond what may be granted"


class InvalidMask(InvalidRequest):
    slug, title = "invalid-mask", "A masking rule is not valid"


class InvalidRowFilter(InvalidRequest):
    slug, title = "invalid-row-filter", "The row filter does not parse or names unknown fields"


class UnmaskingNotAllowed(InvalidRequest):
    slug, title = "unmasking-not-allowed", "This field may not be delivered in clear"


class InvalidTerms(InvalidRequest):
    slug, title = "invalid-grant-terms", "The grant terms are not valid"


class NotYourScenario(Forbidden):
    slug, title = "not-your-scenario", "Only the scenario itself (or an admin) may do this"


class EvidenceOnly(Forbidden):
    slug, title = (
        "evaluators-read-evidence-only",
        "An evaluator reads evaluation evidence, not grant terms or record data",
    )


class NotTheOwningDepartment(Forbidden):
    slug, title = (
        "not-the-owning-department",
        "Only an approver of the dataset's owning department may do this",
    )


class StageTransitionNotAllowed(Conflict):
    slug, title = (
        "stage-transition-not-allowed",
        "The scenario cannot move to that stage from its current one",
    )


class StageMoveNotYours(Forbidden):
    slug, title = "stage-move-not-yours", "This stage change is decided by an operator"


class InvalidStartingStage(InvalidRequest):
    slug, title = "invalid-starting-stage", "A scenario cannot start in that stage"
