"""FastAPI dependencies of scenario evaluation, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.auth import Principal, PrincipalKind, require

EvaluatorDep = Annotated[Principal, Depends(require(PrincipalKind.evaluator))]
"""An evaluator (or an admin): a verdict's service refuses the admin, a verification does not."""
VerifierDep = Annotated[Principal, Depends(require(PrincipalKind.evaluator, PrincipalKind.operator))]
"""Who verifies a saved evaluation report: evaluators, operators, admins."""
