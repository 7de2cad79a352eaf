"""Domain errors of scenario evaluation, each one problem type."""

from __future__ import annotations

from services.common.problems import Conflict, Forbidden, InvalidRequest, NotFound


class ObjectiveNotFound(NotFound):
    slug, title = "objective-not-found", "Objective not found"


class NotYourScenario(Forbidden):
    slug, title = (
        "not-your-scenario-evaluation",
        "Only the scenario itself, an operator or an admin may do this",
    )


class NotAnEvaluationReader(Forbidden):
    slug, title = (
        "not-an-evaluation-reader",
        "Only the scenario itself, an evaluator, an operator or an admin reads its evaluation",
    )


class EvaluatorsOnly(Forbidden):
    slug, title = "evaluators-only", "Only an evaluator records a verdict"


class ObjectiveWithdrawn(Conflict):
    slug, title = "objective-withdrawn", "The objective is withdrawn"


class OutcomeSuperseded(Conflict):
    slug, title = "outcome-superseded", "The outcome has already been corrected"


class IdempotencyKeyReused(Conflict):
    slug, title = "idempotency-key-reused", "The Idempotency-Key was used with another request"


class InvalidObjective(InvalidRequest):
    slug, title = "invalid-objective", "The objective is not valid"


class InvalidOutcome(InvalidRequest):
    slug, title = "invalid-outcome", "The outcome is not valid"


class InvalidVerdict(InvalidRequest):
    slug, title = "invalid-verdict", "The verdict is not valid"


class InvalidReport(InvalidRequest):
    slug, title = "invalid-evaluation-report", "The evaluation report cannot be verified"


class InvalidIdempotencyKey(InvalidRequest):
    slug, title = "invalid-idempotency-key", "The Idempotency-Key header is not valid"
