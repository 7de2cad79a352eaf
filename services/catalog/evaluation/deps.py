"""FastAPI dependencies of scenario evaluation, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.auth import Principal, PrincipalKind, require

VerifierDep = Annotated[Principal, Depends(require(PrincipalKind.evaluator, PrincipalKind.operator))]
"""Who verifies a saved evaluation report: evaluators, operators, admins."""
