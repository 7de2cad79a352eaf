"""Domain errors of the catalog, each one problem type."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from services.common.i18n import N_, Sentence
from services.common.problems import Conflict, FieldError, Forbidden, InvalidRequest, NotFound


class DatasetNotFound(NotFound):
    slug, title = "dataset-not-found", "Dataset not found"


class DepartmentNotFound(NotFound):
    slug, title = "department-not-found", "Department not found"


class DomainNotFound(NotFound):
    slug, title = "domain-not-found", "Domain not found"


class PrincipalNotFound(NotFound):
    slug, title = "principal-not-found", "Principal not found"


class ContractVersionNotFound(NotFound):
    slug, title = "contract-version-not-found", "Contract version not found"


class ApiKeyNotFound(NotFound):
    slug, title = "api-key-not-found", "API key not found"


class DomainOwnedByAnotherDepartment(Forbidden):
    slug, title = "domain-owned-by-another-department", "The domain belongs to another department"


class AlreadyExists(Conflict):
    slug, title = "already-exists", "Already exists"


class IncompatibleContract(Conflict):
    slug, title = "incompatible-contract", "The contract version breaks the dataset's compatibility mode"


class VersionNotHigher(Conflict):
    slug, title = "version-not-higher", "The contract version is not higher than the last"


class ContractMismatch(InvalidRequest):
    slug, title = "contract-mismatch", "The contract does not describe this dataset"


class InvalidCursor(InvalidRequest):
    slug, title = "invalid-cursor", "The pagination cursor is not valid"


def refuse_unknown(values: Sequence[str], known: Collection[str], member: str, noun: Sentence) -> None:
    """A 422 naming each of ``values`` (the body's ``member``) that is not ``known``; ``noun`` says
    what a value names (``Sentence(N_("domain"))``), in the reader's language."""
    errors = [
        FieldError(
            path=f"/body/{member}/{index}",
            rule="exists",
            message=Sentence(N_("no %(noun)s %(value)r"), noun=noun, value=value),
        )
        for index, value in enumerate(values)
        if value not in known
    ]
    if errors:
        raise InvalidRequest(Sentence(N_("not every %(noun)s named exists"), noun=noun), errors=errors)
