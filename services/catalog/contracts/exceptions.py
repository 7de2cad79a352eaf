"""The problems a submitted contract document can raise, shared by the loader and the parser."""

from __future__ import annotations

from services.common.problems import Problem


class ContractInvalid(Problem):
    """The submitted document is not an ODCS v3 contract citybase can accept; ``errors`` say where."""

    slug, title, status = "contract-invalid", "The data contract is not valid", 422


class ContractTooLarge(Problem):
    """The submitted document is larger than the catalog accepts (checked before parsing)."""

    slug, title, status = "contract-too-large", "The contract document is too large", 413
