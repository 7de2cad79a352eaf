"""Domain errors of quality, each one problem type (RFC 9457)."""

from __future__ import annotations

from typing import Any

from services.common.problems import FieldError, InvalidRequest, NotFound


class DatasetNotFound(NotFound):
    slug, title = "dataset-not-found", "Dataset not found"


class ScenarioNotFound(NotFound):
    slug, title = "scenario-not-found", "Scenario not found"


class DepartmentNotFound(NotFound):
    slug, title = "department-not-found", "Department not found"


class InvalidTimeRange(InvalidRequest):
    slug, title = "invalid-time-range", "The time range is not valid"

    def __init__(self, detail: str, *, path: str, **extensions: Any) -> None:
        super().__init__(
            detail, errors=[FieldError(path=path, rule="time-range", message=detail)], **extensions
        )


class InvalidPeriod(InvalidRequest):
    slug, title = "invalid-period", "The period is not valid"

    def __init__(self, detail: str, *, path: str = "/query/period") -> None:
        super().__init__(detail, errors=[FieldError(path=path, rule="period", message=detail)])
