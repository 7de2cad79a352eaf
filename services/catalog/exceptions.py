"""Domain errors of the catalog, each one problem type."""

from __future__ import annotations

from services.common.problems import Conflict, Forbidden, InvalidRequest, NotFound


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
