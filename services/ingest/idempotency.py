"""Idempotency keys of batches: the first answer to a key is stored and replayed to its retries.

A batch sent with ``Idempotency-Key`` first *claims* the key (a row with no answer yet, inserted
under the table's primary key, so two concurrent requests cannot both claim it), then publishes,
then stores its answer. A retry with the same key and the same request gets the stored answer and
publishes nothing; the same key with a different request is a 422; a retry that arrives while the
first request still runs gets a 409 with Retry-After. Only a 202 is stored: a batch that failed
(bad body, bus down) published nothing it claims, so its key is released and a retry runs afresh.
A claim whose process died without answering frees itself after ``stale_after_s``.

Keys are per principal: two departments may use the same key without meeting.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services.common import db
from services.common.clock import aware
from services.common.i18n import N_, Sentence
from services.ingest.exceptions import IdempotencyKeyInProgress, IdempotencyKeyReused
from services.ingest.models import IdempotencyKey

PENDING = 0
"""``status_code`` of a claimed key whose request has not answered yet."""


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: dict[str, Any]


def fingerprint(dataset_id: str, media_type: str, contract_version: str | None, body_sha256: str) -> str:
    """What makes two requests "the same": dataset, format, claimed version, decompressed body."""
    text = "\x1f".join((dataset_id, media_type, contract_version or "", body_sha256))
    return hashlib.sha256(text.encode()).hexdigest()


def claim(
    sessions: sessionmaker[Session],
    *,
    principal_id: str,
    key: str,
    dataset_id: str,
    request_fingerprint: str,
    now: datetime,
    stale_after_s: float,
) -> StoredAnswer | None:
    """Claim ``key`` for this request (None), or return the answer stored for it.

    Raises :class:`IdempotencyKeyReused` for a different request under the same key and
    :class:`IdempotencyKeyInProgress` while the first request with this key still runs.
    """
    for _attempt in range(3):
        try:
            with db.unit_of_work(sessions) as session:
                session.add(
                    IdempotencyKey(
                        principal_id=principal_id,
                        key=key,
                        dataset_id=dataset_id,
                        request_fingerprint=request_fingerprint,
                        status_code=PENDING,
                        response="",
                        created_at=now,
                    )
                )
                session.flush()
            return None
        except IntegrityError:
            pass
        with db.unit_of_work(sessions) as session:
            row = session.get(IdempotencyKey, (principal_id, key))
            if row is None:
                continue  # released or purged meanwhile: claim it again
            if row.request_fingerprint != request_fingerprint or row.dataset_id != dataset_id:
                raise IdempotencyKeyReused(
                    Sentence(
                        N_(
                            "this Idempotency-Key was first used for a different request (another body, dataset, format or contract version); use a new key for a new batch"
                        )
                    )
                )
            if row.status_code != PENDING:
                return StoredAnswer(row.status_code, json.loads(row.response))
            if aware(row.created_at) > now - timedelta(seconds=stale_after_s):
                raise IdempotencyKeyInProgress(
                    Sentence(
                        N_("a request with this Idempotency-Key is still being processed; retry shortly")
                    )
                )
            taken = session.execute(
                sa.update(IdempotencyKey)
                .where(
                    IdempotencyKey.principal_id == principal_id,
                    IdempotencyKey.key == key,
                    IdempotencyKey.status_code == PENDING,
                    IdempotencyKey.created_at == row.created_at,
                )
                .values(created_at=now)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(taken) == 1:
                return None  # the stale claim of a dead request is ours now
    raise IdempotencyKeyInProgress(Sentence(N_("this Idempotency-Key is contended; retry shortly")))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def complete(
    sessions: sessionmaker[Session], *, principal_id: str, key: str, status: int, body: dict[str, Any]
) -> None:
    """Store the answer of a claimed key (replayed to every retry from now on)."""
    with db.unit_of_work(sessions) as session:
        session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.principal_id == principal_id, IdempotencyKey.key == key)
            .values(status_code=status, response=json.dumps(body, ensure_ascii=False, separators=(",", ":")))
            .execution_options(synchronize_session=False)
        )


def release(sessions: sessionmaker[Session], *, principal_id: str, key: str) -> None:
    """Give up a claim that has no answer to store (the request failed; a retry runs afresh)."""
    with db.unit_of_work(sessions) as session:
        session.execute(
            sa.delete(IdempotencyKey)
            .where(
                IdempotencyKey.principal_id == principal_id,
                IdempotencyKey.key == key,
                IdempotencyKey.status_code == PENDING,
            )
            .execution_options(synchronize_session=False)
        )


def purge(sessions: sessionmaker[Session], *, older_than: datetime) -> int:
    """Delete keys created before ``older_than``; returns how many."""
    with db.unit_of_work(sessions) as session:
        result = session.execute(
            sa.delete(IdempotencyKey)
            .where(IdempotencyKey.created_at < older_than)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)
