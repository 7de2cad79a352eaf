"""Objectives, outcomes and verdicts of a scenario's evaluation.

- A scenario (or an operator, or an admin) **sets objectives** for a period: a delivery objective
  (``dataset-use``, ``delivered-records``, ``active-days``) or a ``quality-floor`` over datasets
  that quality measures, or an ``outcome``: a KPI the scenario reports itself. An objective is
  withdrawn with a reason, never edited.
- The scenario (or an operator) **reports outcomes** of its ``outcome`` objectives, each naming
  the grants and datasets it rests on. A correction is a new outcome naming the one it corrects,
  which is republished with ``superseded_by``; values are never edited. An ``Idempotency-Key``
  makes a retry safe: the same key and body answer the outcome already reported.
- An evaluator **records a verdict** on a period, with one reason per active objective of it,
  naming the evaluation report (its audit checkpoint and digest) it rests on.

Every change is audited with its figures and the scenario it concerns (the trail a saved report
is verified against, :mod:`.verification`) and announced on ``platform.catalog``. The caller's
unit of work commits.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.access.context import Collaborators, scenario_of
from services.catalog.access.models import Grant
from services.catalog.audit.models import AuditEntry
from services.catalog.evaluation import exceptions
from services.catalog.evaluation.models import Objective, Outcome, Verdict
from services.catalog.evaluation.schemas import (
    ObjectiveCreate,
    ObjectiveKind,
    ObjectiveRead,
    ObjectiveStatus,
    OutcomeCreate,
    OutcomeRead,
    VerdictCreate,
    VerdictRead,
)
from services.catalog.models import Dataset
from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.clock import as_utc
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}\Z")


def new_id(prefix: str) -> str:
    """``obj_``, ``out_`` or ``ver_`` and 12 hex digits."""
    return f"{prefix}_{secrets.token_hex(6)}"


def _is_staff(actor: Principal) -> bool:
    return actor.kind in (PrincipalKind.operator, PrincipalKind.admin)


def _may_change(actor: Principal, scenario_id: str) -> None:
    """The scenario itself, an operator or an admin sets and withdraws its objectives."""
    if _is_staff(actor) or (actor.kind is PrincipalKind.scenario and actor.id == scenario_id):
        return
    raise exceptions.NotYourScenario(
        Sentence(
            N_("only the scenario %(scenario_id)r, an operator or an admin may do this"),
            scenario_id=scenario_id,
        )
    )


def may_read(actor: Principal, scenario_id: str) -> None:
    """The scenario itself, an evaluator, an operator or an admin reads a scenario's evaluation."""
    if _is_staff(actor) or actor.kind is PrincipalKind.evaluator:
        return
    if actor.kind is PrincipalKind.scenario and actor.id == scenario_id:
        return
    raise exceptions.NotAnEvaluationReader(
        Sentence(
            N_("the evaluation of %(scenario_id)r is read by the scenario itself, evaluators and operators"),
            scenario_id=scenario_id,
        )
    )


def _period_error(start: datetime, end: datetime, member: str = "period_end") -> list[FieldError]:
    if as_utc(end) > as_utc(start):
        return []
    return [
        FieldError(
            path=f"/body/{member}",
            rule="after-start",
            message=Sentence(N_("the period ends after it starts")),
        )
    ]


# --- objectives -------------------------------------------------------------------------------


def objective_read(objective: Objective) -> ObjectiveRead:
    return ObjectiveRead.model_validate(objective)


def _objective_errors(session: Session, payload: ObjectiveCreate) -> list[FieldError]:
    errors = _period_error(payload.period_start, payload.period_end)
    kind = payload.kind
    if kind is ObjectiveKind.dataset_use:
        if payload.target is not None:
            errors.append(
                FieldError(
                    path="/body/target", rule="null", message=Sentence(N_("dataset-use takes no target"))
                )
            )
    elif payload.target is None:
        errors.append(
            FieldError(
                path="/body/target",
                rule="required",
                message=Sentence(N_("an objective of kind %(kind)s needs a target"), kind=kind.value),
            )
        )
    elif payload.target < 0:
        errors.append(
            FieldError(path="/body/target", rule="minimum", message=Sentence(N_("a target is 0 or more")))
        )
    elif kind is ObjectiveKind.quality_floor and payload.target > 100:
        errors.append(
            FieldError(
                path="/body/target",
                rule="maximum",
                message=Sentence(N_("a quality floor is a score from 0 to 100")),
            )
        )
    if kind is ObjectiveKind.outcome:
        if payload.kpi is None:
            errors.append(
                FieldError(
                    path="/body/kpi",
                    rule="required",
                    message=Sentence(N_("an outcome objective names its KPI: name, unit and direction")),
                )
            )
    elif not payload.datasets:
        errors.append(
            FieldError(
                path="/body/datasets",
                rule="min-items",
                message=Sentence(N_("an objective of kind %(kind)s names its datasets"), kind=kind.value),
            )
        )
    known = set(session.scalars(sa.select(Dataset.id).where(Dataset.id.in_(payload.datasets))))
    errors += [
        FieldError(
            path=f"/body/datasets/{index}",
            rule="exists",
            message=Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id),
        )
        for index, dataset_id in enumerate(payload.datasets)
        if dataset_id not in known
    ]
    return errors


def set_objective(
    ctx: Collaborators, *, actor: Principal, scenario_id: str, payload: ObjectiveCreate
) -> ObjectiveRead:
    """A new active objective of the scenario for a period; 422 naming each invalid member."""
    ctx.audit.attempting(
        "objective.set", "objective", "-", scenario_id=scenario_id, details={"kind": payload.kind.value}
    )
    _may_change(actor, scenario_id)
    scenario_of(ctx.session, scenario_id)
    errors = _objective_errors(ctx.session, payload)
    if errors:
        raise exceptions.InvalidObjective(Sentence(N_("the objective is not valid")), errors=errors)
    now = ctx.clock()
    objective = Objective(
        id=new_id("obj"),
        scenario_id=scenario_id,
        title=payload.title,
        kind=payload.kind.value,
        datasets=list(dict.fromkeys(payload.datasets)),
        target=payload.target,
        kpi=payload.kpi.model_dump(mode="json") if payload.kpi else None,
        period_start=as_utc(payload.period_start),
        period_end=as_utc(payload.period_end),
        status=ObjectiveStatus.active.value,
        version=1,
        set_by=actor.id,
        set_at=now,
        withdrawn_at=None,
        withdrawn_reason=None,
    )
    ctx.session.add(objective)
    ctx.session.flush()
    read = objective_read(objective)
    ctx.audit.record(
        ctx.session,
        action="objective.set",
        resource_type="objective",
        resource_id=objective.id,
        scenario_id=scenario_id,
        details=read.model_dump(
            mode="json", include={"title", "kind", "datasets", "target", "kpi", "period_start", "period_end"}
        ),
    )
    ctx.events.publish(ctx.session, catalog_events.OBJECTIVE, objective.id, read)
    return read


def _objective_of(session: Session, objective_id: str, *, for_update: bool = False) -> Objective:
    query = sa.select(Objective).where(Objective.id == objective_id)
    if for_update:
        query = query.with_for_update()
    objective = session.scalars(query).one_or_none()
    if objective is None:
        raise exceptions.ObjectiveNotFound(
            Sentence(N_("no objective %(objective_id)r"), objective_id=objective_id)
        )
    return objective


def withdraw_objective(
    ctx: Collaborators, *, actor: Principal, objective_id: str, reason: str
) -> ObjectiveRead:
    """Withdraw an active objective with a reason (its scenario, an operator, an admin); 409 if
    it is withdrawn already."""
    ctx.audit.attempting("objective.withdraw", "objective", objective_id)
    objective = _objective_of(ctx.session, objective_id, for_update=True)
    ctx.audit.attempting(
        "objective.withdraw",
        "objective",
        objective_id,
        scenario_id=objective.scenario_id,
        details={"reason": reason},
    )
    _may_change(actor, objective.scenario_id)
    if objective.status != ObjectiveStatus.active.value:
        raise exceptions.ObjectiveWithdrawn(
            Sentence(N_("the objective %(objective_id)r is withdrawn already"), objective_id=objective_id)
        )
    objective.status = ObjectiveStatus.withdrawn.value
    objective.version += 1
    objective.withdrawn_at = ctx.clock()
    objective.withdrawn_reason = reason
    ctx.session.flush()
    read = objective_read(objective)
    ctx.audit.record(
        ctx.session,
        action="objective.withdraw",
        resource_type="objective",
        resource_id=objective.id,
        scenario_id=objective.scenario_id,
        details={"reason": reason, "version": objective.version},
    )
    ctx.events.publish(ctx.session, catalog_events.OBJECTIVE, objective.id, read)
    return read


def list_objectives(session: Session, *, actor: Principal, scenario_id: str) -> list[ObjectiveRead]:
    """The scenario's objectives, oldest first, withdrawn ones included."""
    may_read(actor, scenario_id)
    scenario_of(session, scenario_id)
    rows = session.scalars(
        sa.select(Objective)
        .where(Objective.scenario_id == scenario_id)
        .order_by(Objective.set_at, Objective.id)
    )
    return [objective_read(row) for row in rows]


# --- outcomes ---------------------------------------------------------------------------------


def outcome_read(outcome: Outcome) -> OutcomeRead:
    return OutcomeRead.model_validate(outcome)


def fingerprint(payload: OutcomeCreate) -> str:
    """SHA-256 of the body's canonical JSON: what a retry under the same key must repeat."""
    text = json.dumps(payload.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(
    session: Session, scenario_id: str, idempotency_key: str, payload: OutcomeCreate
) -> OutcomeRead | None:
    """The outcome already reported under this key, if any; 409 if it was another body."""
    earlier = session.scalars(
        sa.select(Outcome).where(
            Outcome.scenario_id == scenario_id, Outcome.idempotency_key == idempotency_key
        )
    ).one_or_none()
    if earlier is None:
        return None
    if earlier.request_fingerprint != fingerprint(payload):
        raise exceptions.IdempotencyKeyReused(
            Sentence(
                N_("the Idempotency-Key %(key)r was used for outcome %(outcome_id)r with another body"),
                key=idempotency_key,
                outcome_id=earlier.id,
            )
        )
    return outcome_read(earlier)


def _outcome_errors(
    session: Session, scenario_id: str, payload: OutcomeCreate
) -> tuple[list[FieldError], Outcome | None]:
    """What is wrong with the outcome's members, and the outcome it corrects (when named and found)."""
    errors = _period_error(payload.period_start, payload.period_end)
    objective = session.get(Objective, payload.objective_id)
    if objective is None or objective.scenario_id != scenario_id:
        errors.append(
            FieldError(
                path="/body/objective_id",
                rule="exists",
                message=Sentence(
                    N_("no objective %(objective_id)r of scenario %(scenario_id)r"),
                    objective_id=payload.objective_id,
                    scenario_id=scenario_id,
                ),
            )
        )
    elif objective.kind != ObjectiveKind.outcome.value:
        errors.append(
            FieldError(
                path="/body/objective_id",
                rule="kind",
                message=Sentence(
                    N_(
                        "objective %(objective_id)r is of kind %(kind)s: outcomes are reported for kind outcome"
                    ),
                    objective_id=objective.id,
                    kind=objective.kind,
                ),
            )
        )
    elif objective.status != ObjectiveStatus.active.value:
        errors.append(
            FieldError(
                path="/body/objective_id",
                rule="active",
                message=Sentence(N_("objective %(objective_id)r is withdrawn"), objective_id=objective.id),
            )
        )
    grants = {
        grant.id: grant
        for grant in session.scalars(sa.select(Grant).where(Grant.id.in_(payload.grant_ids)))
        if grant.scenario_id == scenario_id
    }
    errors += [
        FieldError(
            path=f"/body/grant_ids/{index}",
            rule="exists",
            message=Sentence(
                N_("no grant %(grant_id)r of scenario %(scenario_id)r"),
                grant_id=grant_id,
                scenario_id=scenario_id,
            ),
        )
        for index, grant_id in enumerate(payload.grant_ids)
        if grant_id not in grants
    ]
    covered = {grant.dataset_id for grant in grants.values()}
    errors += [
        FieldError(
            path=f"/body/dataset_ids/{index}",
            rule="granted",
            message=Sentence(
                N_("dataset %(dataset_id)r is not covered by the grants named in grant_ids"),
                dataset_id=dataset_id,
            ),
        )
        for index, dataset_id in enumerate(payload.dataset_ids)
        if dataset_id not in covered
    ]
    corrected = None
    if payload.corrects is not None:
        corrected = session.scalars(
            sa.select(Outcome).where(Outcome.id == payload.corrects).with_for_update()
        ).one_or_none()
        if corrected is None or corrected.scenario_id != scenario_id:
            errors.append(
                FieldError(
                    path="/body/corrects",
                    rule="exists",
                    message=Sentence(
                        N_("no outcome %(outcome_id)r of scenario %(scenario_id)r"),
                        outcome_id=payload.corrects,
                        scenario_id=scenario_id,
                    ),
                )
            )
            corrected = None
        elif corrected.objective_id != payload.objective_id:
            errors.append(
                FieldError(
                    path="/body/corrects",
                    rule="same-objective",
                    message=Sentence(
                        N_("outcome %(outcome_id)r is of objective %(objective_id)r: a correction keeps it"),
                        outcome_id=corrected.id,
                        objective_id=corrected.objective_id,
                    ),
                )
            )
    return errors, corrected


def report_outcome(
    ctx: Collaborators,
    *,
    actor: Principal,
    scenario_id: str,
    payload: OutcomeCreate,
    idempotency_key: str | None = None,
) -> tuple[OutcomeRead, bool]:
    """Report an outcome of one of the scenario's ``outcome`` objectives (the scenario itself, an
    operator, an admin); ``(outcome, created)``: not created when the ``idempotency_key`` was used
    with the same body before (409 with another). A correction (``corrects``) supersedes the
    outcome it names, which must not be superseded already (409)."""
    ctx.audit.attempting(
        "outcome.report",
        "outcome",
        "-",
        scenario_id=scenario_id,
        details={"objective_id": payload.objective_id, "value": payload.value, "corrects": payload.corrects},
    )
    _may_change(actor, scenario_id)
    scenario_of(ctx.session, scenario_id)
    if idempotency_key is not None:
        if not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise exceptions.InvalidIdempotencyKey(
                Sentence(N_("Idempotency-Key must be 1 to 255 visible ASCII characters"))
            )
        earlier = _replay(ctx.session, scenario_id, idempotency_key, payload)
        if earlier is not None:
            return earlier, False
    errors, corrected = _outcome_errors(ctx.session, scenario_id, payload)
    if errors:
        raise exceptions.InvalidOutcome(Sentence(N_("the outcome is not valid")), errors=errors)
    if corrected is not None and corrected.superseded_by is not None:
        raise exceptions.OutcomeSuperseded(
            Sentence(
                N_("outcome %(outcome_id)r is already corrected by %(superseded_by)r: correct that one"),
                outcome_id=corrected.id,
                superseded_by=corrected.superseded_by,
            ),
            errors=[
                FieldError(
                    path="/body/corrects",
                    rule="not-superseded",
                    message=Sentence(N_("the outcome named is already corrected")),
                )
            ],
        )
    outcome = Outcome(
        id=new_id("out"),
        scenario_id=scenario_id,
        objective_id=payload.objective_id,
        period_start=as_utc(payload.period_start),
        period_end=as_utc(payload.period_end),
        value=payload.value,
        grant_ids=list(dict.fromkeys(payload.grant_ids)),
        dataset_ids=list(dict.fromkeys(payload.dataset_ids)),
        note=payload.note,
        corrects=payload.corrects,
        superseded_by=None,
        reported_by=actor.id,
        reported_at=ctx.clock(),
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint(payload) if idempotency_key is not None else None,
    )
    ctx.session.add(outcome)
    ctx.session.flush()
    read = outcome_read(outcome)
    ctx.audit.record(
        ctx.session,
        action="outcome.report",
        resource_type="outcome",
        resource_id=outcome.id,
        scenario_id=scenario_id,
        details=read.model_dump(
            mode="json",
            include={
                "objective_id",
                "period_start",
                "period_end",
                "value",
                "grant_ids",
                "dataset_ids",
                "corrects",
            },
        ),
    )
    ctx.events.publish(ctx.session, catalog_events.OUTCOME, outcome.id, read)
    if corrected is not None:
        corrected.superseded_by = outcome.id
        ctx.session.flush()
        ctx.events.publish(ctx.session, catalog_events.OUTCOME, corrected.id, outcome_read(corrected))
    return read, True


def list_outcomes(session: Session, *, actor: Principal, scenario_id: str) -> list[OutcomeRead]:
    """The scenario's outcomes, oldest first, corrected ones included (with ``superseded_by``)."""
    may_read(actor, scenario_id)
    scenario_of(session, scenario_id)
    rows = session.scalars(
        sa.select(Outcome).where(Outcome.scenario_id == scenario_id).order_by(Outcome.reported_at, Outcome.id)
    )
    return [outcome_read(row) for row in rows]


# --- verdicts ---------------------------------------------------------------------------------


def verdict_read(verdict: Verdict) -> VerdictRead:
    return VerdictRead.model_validate(verdict)


def active_objectives(session: Session, scenario_id: str, start: datetime, end: datetime) -> list[Objective]:
    """The scenario's active objectives whose period overlaps ``[start, end)``."""
    return list(
        session.scalars(
            sa.select(Objective)
            .where(
                Objective.scenario_id == scenario_id,
                Objective.status == ObjectiveStatus.active.value,
                Objective.period_start < end,
                Objective.period_end > start,
            )
            .order_by(Objective.set_at, Objective.id)
        )
    )


def _reason_errors(objectives: Sequence[Objective], payload: VerdictCreate) -> list[FieldError]:
    expected = {objective.id for objective in objectives}
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, reason in enumerate(payload.reasons):
        path = f"/body/reasons/{index}/objective_id"
        if reason.objective_id not in expected:
            errors.append(
                FieldError(
                    path=path,
                    rule="active-objective",
                    message=Sentence(
                        N_("%(objective_id)r is not an active objective of the scenario in the period"),
                        objective_id=reason.objective_id,
                    ),
                )
            )
        elif reason.objective_id in seen:
            errors.append(
                FieldError(
                    path=path,
                    rule="unique",
                    message=Sentence(
                        N_("objective %(objective_id)r has a reason already"),
                        objective_id=reason.objective_id,
                    ),
                )
            )
        seen.add(reason.objective_id)
    missing = [objective.id for objective in objectives if objective.id not in seen]
    if missing:
        errors.append(
            FieldError(
                path="/body/reasons",
                rule="one-per-objective",
                message=Sentence(
                    N_("every active objective of the period has a reason; missing: %(missing)s"),
                    missing=", ".join(missing),
                ),
            )
        )
    return errors


def _checkpoint_errors(session: Session, payload: VerdictCreate) -> list[FieldError]:
    """A report's checkpoint must be on the chain: the entry at its position, with its hash."""
    point = payload.report.checkpoint
    if point is None:
        return []
    entry = session.get(AuditEntry, point.seq)
    if entry is not None and entry.hash == point.hash:
        return []
    return [
        FieldError(
            path="/body/report/checkpoint",
            rule="on-the-chain",
            message=Sentence(
                N_("the audit trail holds no entry %(seq)s with that hash: the report is not of this trail"),
                seq=point.seq,
            ),
        )
    ]


def record_verdict(
    ctx: Collaborators, *, actor: Principal, scenario_id: str, payload: VerdictCreate
) -> VerdictRead:
    """An evaluator's verdict on the scenario's period (evaluators only: not even an admin, whose
    verdict would not be a third party's); every active objective of the period has exactly one
    reason, and the report's checkpoint, when it names one, is on the audit chain."""
    ctx.audit.attempting(
        "verdict.record", "verdict", "-", scenario_id=scenario_id, details={"result": payload.result.value}
    )
    if actor.kind is not PrincipalKind.evaluator:
        raise exceptions.EvaluatorsOnly(Sentence(N_("a verdict is recorded by an evaluator")))
    scenario_of(ctx.session, scenario_id)
    errors = _period_error(payload.period_start, payload.period_end)
    if not errors:
        objectives = active_objectives(
            ctx.session, scenario_id, as_utc(payload.period_start), as_utc(payload.period_end)
        )
        errors = _reason_errors(objectives, payload)
    errors += _checkpoint_errors(ctx.session, payload)
    if errors:
        raise exceptions.InvalidVerdict(Sentence(N_("the verdict is not valid")), errors=errors)
    verdict = Verdict(
        id=new_id("ver"),
        scenario_id=scenario_id,
        period_start=as_utc(payload.period_start),
        period_end=as_utc(payload.period_end),
        result=payload.result.value,
        reasons=[reason.model_dump(mode="json") for reason in payload.reasons],
        report=payload.report.model_dump(mode="json"),
        evaluator_id=actor.id,
        recorded_at=ctx.clock(),
    )
    ctx.session.add(verdict)
    ctx.session.flush()
    read = verdict_read(verdict)
    ctx.audit.record(
        ctx.session,
        action="verdict.record",
        resource_type="verdict",
        resource_id=verdict.id,
        scenario_id=scenario_id,
        details=read.model_dump(
            mode="json", include={"period_start", "period_end", "result", "reasons", "report"}
        ),
    )
    ctx.events.publish(ctx.session, catalog_events.VERDICT, verdict.id, read)
    return read


def list_verdicts(session: Session, *, actor: Principal, scenario_id: str) -> list[VerdictRead]:
    """The scenario's verdicts, oldest first."""
    may_read(actor, scenario_id)
    scenario_of(session, scenario_id)
    rows = session.scalars(
        sa.select(Verdict).where(Verdict.scenario_id == scenario_id).order_by(Verdict.recorded_at, Verdict.id)
    )
    return [verdict_read(row) for row in rows]
