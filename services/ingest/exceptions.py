"""Domain errors of ingest, each one problem type (RFC 9457)."""

from __future__ import annotations

from services.common.problems import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
)


class DatasetNotFound(NotFound):
    slug, title = "dataset-not-found", "Dataset not found"


class NotDatasetPublisher(Forbidden):
    slug, title = "not-dataset-publisher", "Only the owning department may publish to this dataset"


class DatasetNotWritable(Conflict):
    slug, title = "dataset-not-writable", "The dataset does not accept records"


class StreamClosed(Conflict):
    slug, title = "stream-closed", "The dataset's contract has no schema yet"


class ContractVersionMismatch(Conflict):
    slug, title = (
        "contract-version-mismatch",
        "The records are not written for the dataset's current contract",
    )


class UnsupportedMediaType(Problem):
    slug, title, status = "unsupported-media-type", "Unsupported media type", 415


class PayloadTooLarge(Problem):
    slug, title, status = "payload-too-large", "The request body is too large", 413


class TooManyRecords(Problem):
    slug, title, status = "too-many-records", "Too many records in one batch", 413


class EmptyBody(BadRequest):
    slug, title = "empty-body", "The request holds no records"


class InvalidUtf8(BadRequest):
    slug, title = "invalid-utf8", "The request body is not valid UTF-8"


class InvalidHeader(BadRequest):
    slug, title = "invalid-header", "A request header is not valid"


class CsvHeaderMismatch(InvalidRequest):
    slug, title = "csv-header-mismatch", "The CSV header does not match the contract"


class IdempotencyKeyReused(InvalidRequest):
    slug, title = "idempotency-key-reused", "The Idempotency-Key was used for a different request"


class IdempotencyKeyInProgress(Conflict):
    slug, title = "idempotency-key-in-progress", "A request with this Idempotency-Key is still running"

    def __init__(self, detail: str | None = None, *, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class ContractNotLoaded(ServiceUnavailable):
    slug, title = "contract-not-loaded", "The dataset's current contract has not reached ingest yet"


class PublishFailed(ServiceUnavailable):
    """The bus did not acknowledge every record: nothing is reported accepted."""

    slug, title = "publish-failed", "The records could not be written durably"


class PublisherBusy(TooManyRequests):
    slug, title = "publisher-busy", "Ingest's publish buffer is full"
