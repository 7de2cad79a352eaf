"""Appending to, reading and verifying the audit trail.

Every entry is hashed over its canonical JSON form together with the previous entry's hash
(SHA-256; the first entry follows :data:`GENESIS`). Appends lock the single head row, so entries
get gap-free sequence numbers in commit order and the chain never forks; the lock is held until
the request's transaction commits, which serializes audited writes of the catalog: they are
decisions made by people, not a hot path.

The request-scoped auditor that appends what each request did, or tried, is :mod:`.auditor`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.catalog.audit.models import AuditCheckpoint, AuditEntry, AuditHead, AuditVerificationRun
from services.catalog.audit.schemas import AuditVerification, ChainBreak
from services.catalog.exceptions import InvalidCursor
from services.common import catalog_events, db
from services.common.auth import Principal, PrincipalKind
from services.common.background import Periodic
from services.common.bus import Bus, BusError, read_from_beginning
from services.common.clock import as_utc
from services.common.i18n import N_, Sentence
from services.common.outbox import Outbox
from services.common.problems import ServiceUnavailable

if TYPE_CHECKING:  # the auditor appends through this module
    from services.catalog.audit.auditor import Auditor

log = logging.getLogger(__name__)

GENESIS = "0" * 64
"""The previous hash of the first entry."""

SUCCESS, DENIED, FAILED = "success", "denied", "failed"
OUTCOMES = (SUCCESS, DENIED, FAILED)


@dataclass(frozen=True)
class AuditEvent:
    """What happened: who did what to which resource, for which purpose, with which outcome."""

    action: str
    resource_type: str
    resource_id: str
    outcome: str = SUCCESS
    actor_id: str | None = None
    actor_kind: str | None = None
    purpose: str | None = None
    dataset_id: str | None = None
    department_id: str | None = None
    scenario_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    source_event_id: str | None = None


# --- the chain ---------------------------------------------------------------------------------


def _timestamp(moment: datetime) -> str:
    """UTC with microseconds: the same text whether the database kept the zone or not."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the entry's canonical JSON, which includes the previous entry's hash."""
    canonical = {
        "seq": entry.seq,
        "at": _timestamp(entry.at),
        "actor_id": entry.actor_id,
        "actor_kind": entry.actor_kind,
        "action": entry.action,
        "resource_type": entry.resource_type,
        "resource_id": entry.resource_id,
        "outcome": entry.outcome,
        "purpose": entry.purpose,
        "dataset_id": entry.dataset_id,
        "department_id": entry.department_id,
        "scenario_id": entry.scenario_id,
        "details": entry.details,
        "source_event_id": entry.source_event_id,
        "prev_hash": entry.prev_hash,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_ready(details: Mapping[str, Any]) -> dict[str, Any]:
    # What the JSON column gives back, so that the hash computed now is the hash verified later.
    plain: dict[str, Any] = json.loads(json.dumps(dict(details), default=str, ensure_ascii=False))
    return plain


def _lock_head(session: Session) -> AuditHead:
    # The migration creates the one head row; locking it orders appends across transactions.
    head = session.scalars(sa.select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        raise RuntimeError("the audit head row is missing: run the catalog's migrations")
    return head


def append(session: Session, event: AuditEvent, *, now: datetime | None = None) -> AuditEntry:
    """Append ``event`` to the chain in the session's transaction (it commits with the change)."""
    if event.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, not {event.outcome!r}")
    head = _lock_head(session)
    entry = AuditEntry(
        seq=head.seq + 1,
        at=now or datetime.now(UTC),
        actor_id=event.actor_id,
        actor_kind=event.actor_kind,
        action=event.action,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        outcome=event.outcome,
        purpose=event.purpose,
        dataset_id=event.dataset_id,
        department_id=event.department_id,
        scenario_id=event.scenario_id,
        details=_json_ready(event.details),
        source_event_id=event.source_event_id,
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    head.seq, head.hash = entry.seq, entry.hash
    session.flush()
    return entry


def checkpoint(session: Session, events: Outbox | None = None) -> AuditCheckpoint | None:
    """Record the current head, unless it is already recorded; publish it when ``events`` is given."""
    head = session.get(AuditHead, 1)
    if head is None or head.seq == 0 or session.get(AuditCheckpoint, head.seq) is not None:
        return None
    point = AuditCheckpoint(seq=head.seq, hash=head.hash, at=datetime.now(UTC))
    session.add(point)
    session.flush()
    if events is not None:
        state = {"seq": point.seq, "hash": point.hash, "at": _timestamp(point.at)}
        # Keyed by position and hash, not by position alone: the topic is compacted, and a second
        # checkpoint at the same position (the chain cut back and grown again) must not replace
        # the first, which is the evidence of the cut.
        events.add(
            session,
            catalog_events.catalog_record(
                catalog_events.AUDIT_CHECKPOINT, f"{point.seq}:{point.hash}", state
            ),
        )
    return point


@dataclass(frozen=True, order=True)
class Checkpoint:
    """A (sequence, hash) of the chain's head as it was published, outside the catalog's database."""

    seq: int
    hash: str
    at: str | None = field(default=None, compare=False)


def _checkpoint_of(state: Mapping[str, Any]) -> Checkpoint | None:
    seq, digest, at = state.get("seq"), state.get("hash"), state.get("at")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
        return None
    return Checkpoint(seq, digest, at if isinstance(at, str) else None)


def published_checkpoints(
    bus: Bus, *, topic: str = catalog_events.TOPIC, timeout_s: float = 30.0
) -> list[Checkpoint]:
    """Every checkpoint ``topic`` (``platform.catalog``) holds, read from its beginning, in
    sequence order; two different hashes at one sequence are both kept."""
    found: set[Checkpoint] = set()
    for message in read_from_beginning(bus, topic, timeout_s=timeout_s, client_id="catalog-audit-verify"):
        event = catalog_events.read_catalog_event(message)
        if event is not None and event[0] == catalog_events.AUDIT_CHECKPOINT:
            point = _checkpoint_of(event[1])
            if point is not None:
                found.add(point)
    return sorted(found)


def write_checkpoints(checkpoints: Iterable[Checkpoint], out: TextIO) -> int:
    """Write ``checkpoints`` as JSON lines (``{"seq", "hash", "at"}``); returns how many."""
    count = 0
    for point in checkpoints:
        out.write(json.dumps({"seq": point.seq, "hash": point.hash, "at": point.at}) + "\n")
        count += 1
    return count


def read_checkpoints(lines: Iterable[str]) -> list[Checkpoint]:
    """The checkpoints of a file :func:`write_checkpoints` wrote; ``ValueError`` names a bad line."""
    found: set[Checkpoint] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            state = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"line {number} is not JSON: {error.msg}") from None
        point = _checkpoint_of(state) if isinstance(state, dict) else None
        if point is None:
            raise ValueError(f"line {number} is not a checkpoint: it needs an integer seq and a hash")
        found.add(point)
    return sorted(found)


@dataclass
class _Anchors:
    """Checkpoints kept outside the database, compared with the chain as it is recomputed."""

    by_seq: dict[int, set[str]]
    source: str
    last_matching: int = 0

    @classmethod
    def of(cls, checkpoints: Sequence[Checkpoint], source: str) -> _Anchors:
        by_seq: dict[int, set[str]] = {}
        for point in checkpoints:
            by_seq.setdefault(point.seq, set()).add(point.hash)
        return cls(by_seq, source)

    def check(self, entry: AuditEntry) -> ChainBreak | None:
        published = self.by_seq.get(entry.seq)
        if published is None:
            return None
        if published != {entry.hash}:
            return ChainBreak(
                seq=entry.seq,
                since_seq=self.last_matching,
                reason=(
                    f"its hash differs from the checkpoint published on {self.source}: the chain "
                    f"was rewritten after entry {self.last_matching}, the last checkpoint that matches"
                ),
            )
        self.last_matching = entry.seq
        return None

    def beyond(self, last_seq: int) -> ChainBreak | None:
        later = sorted(seq for seq in self.by_seq if seq > last_seq)
        if not later:
            return None
        return ChainBreak(
            seq=last_seq + 1,
            since_seq=self.last_matching,
            reason=(
                f"the chain ends at entry {last_seq} but {self.source} holds a checkpoint at entry "
                f"{later[0]}: entries were removed"
            ),
        )


def verify(
    session: Session,
    published: Sequence[Checkpoint] | None = None,
    *,
    source: str = catalog_events.TOPIC,
    batch: int = 1000,
    since: Checkpoint | None = None,
    until: int | None = None,
) -> AuditVerification:
    """Recompute the chain and compare it with the stored hashes, the head, the checkpoints of the
    database and the ``published`` checkpoints (read from ``source``, out of the database).

    With ``until`` (an entry's sequence number: the checkpoint a saved evaluation report names),
    the walk ends at that entry, which must exist; what was appended after it is not looked at.

    Reports the first entry that does not match: an edited row fails its own hash, a removed or
    inserted row breaks the sequence or the next entry's ``prev_hash``, a removed tail falls short
    of the head or of a checkpoint. Someone who can write the database can rewrite all of that
    consistently; only the published checkpoints are out of their reach, so a rewrite shows at the
    first published checkpoint after the change (``since_seq`` is the last one that matched), and
    a cut tail as a published checkpoint beyond the end.

    With ``since`` (a published checkpoint an earlier verification reached) the walk starts after
    it: the entry at ``since`` must still hash to it, which any consistent rewrite of the entries
    before it would change. What it does not see is an edit before ``since`` that left the hashes
    alone (the entry no longer fits its own hash): the full walk, without ``since``, finds that.
    """
    checkpoints = {p.seq: p.hash for p in session.scalars(sa.select(AuditCheckpoint))}
    anchors = _Anchors.of(published or (), source)
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    mode: Literal["full", "incremental"] = "full" if since is None else "incremental"

    def report(ok: bool, **fields: Any) -> AuditVerification:
        return AuditVerification(
            ok=ok,
            mode=mode,
            from_seq=since.seq if since is not None else 0,
            entries_checked=checked,
            published_checkpoints=len(published) if published is not None else None,
            checkpoint_source=source if published is not None else None,
            **fields,
        )

    def broken(problem: ChainBreak) -> AuditVerification:
        return report(False, first_break=problem)

    if since is not None:
        start = session.get(AuditEntry, since.seq)
        if start is None or start.hash != since.hash or entry_hash(start) != start.hash:
            reason = (
                f"entry {since.seq}, where the last verification ended on a published checkpoint, "
                "no longer matches it: the chain was rewritten before it (run a full verification)"
            )
            return broken(ChainBreak(seq=since.seq, reason=reason, since_seq=0))
        expected_prev, expected_seq, last_seq = start.hash, since.seq + 1, since.seq
        anchors.last_matching = since.seq

    while True:
        query = sa.select(AuditEntry).where(AuditEntry.seq > last_seq)
        if until is not None:
            query = query.where(AuditEntry.seq <= until)
        rows = session.scalars(query.order_by(AuditEntry.seq).limit(batch)).all()
        if not rows:
            break
        for entry in rows:
            problem = _check_entry(entry, expected_seq, expected_prev, checkpoints) or anchors.check(entry)
            if problem is not None:
                return broken(problem)
            checked += 1
            expected_seq, expected_prev = entry.seq + 1, entry.hash
            last_seq = entry.seq
        session.expunge_all()
    if until is not None:
        if last_seq != until:
            reason = f"the chain ends at entry {last_seq}, before entry {until}: entries are missing"
            return broken(ChainBreak(seq=last_seq + 1, reason=reason))
        return report(
            True,
            head_seq=last_seq,
            head_hash=expected_prev,
            checkpoints=len(checkpoints),
            last_published_seq=max(anchors.by_seq, default=0) if published is not None else None,
            anchor_seq=anchors.last_matching or None,
        )
    cut = anchors.beyond(last_seq)
    if cut is not None:
        return broken(cut)
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != last_seq or head_hash != expected_prev:
        reason = f"the head says entry {head_seq}, the chain ends at entry {last_seq}: entries are missing or added"
        return broken(ChainBreak(seq=last_seq + 1, reason=reason))
    beyond = sorted(seq for seq in checkpoints if seq > last_seq)
    if beyond:
        reason = f"checkpoint {beyond[0]} is beyond the last entry {last_seq}: entries were removed"
        return broken(ChainBreak(seq=last_seq + 1, reason=reason))
    return report(
        True,
        head_seq=head_seq,
        head_hash=head_hash,
        checkpoints=len(checkpoints),
        last_published_seq=max(anchors.by_seq, default=0) if published is not None else None,
        anchor_seq=anchors.last_matching or None,
    )


def verify_incremental(
    session: Session, published: Sequence[Checkpoint], *, source: str = catalog_events.TOPIC
) -> AuditVerification:
    """Verify from the published checkpoint the last successful verification reached, when
    ``published`` still holds it with the same hash; from the beginning otherwise. Each run is
    recorded (in the caller's session), and a successful one leaves the anchor for the next."""
    anchor = _last_anchor(session, published)
    result = verify(session, published, source=source, since=anchor)
    record_verification(session, result)
    return result


def _last_anchor(session: Session, published: Sequence[Checkpoint]) -> Checkpoint | None:
    run = session.scalars(
        sa.select(AuditVerificationRun)
        .where(AuditVerificationRun.ok.is_(True), AuditVerificationRun.anchor_seq.is_not(None))
        .order_by(AuditVerificationRun.id.desc())
        .limit(1)
    ).first()
    if run is None or run.anchor_seq is None or run.anchor_hash is None:
        return None
    held = {(point.seq, point.hash) for point in published}
    return Checkpoint(run.anchor_seq, run.anchor_hash) if (run.anchor_seq, run.anchor_hash) in held else None


def record_verification(session: Session, result: AuditVerification) -> None:
    """Keep ``result``; a successful run against published checkpoints names the last one that
    matched (``anchor_seq``) and its hash, where the next incremental verification starts."""
    anchor_hash = None
    if result.ok and result.anchor_seq:
        entry = session.get(AuditEntry, result.anchor_seq)
        anchor_hash = entry.hash if entry is not None else None
    session.add(
        AuditVerificationRun(
            at=datetime.now(UTC),
            mode=result.mode,
            ok=result.ok,
            from_seq=result.from_seq,
            entries_checked=result.entries_checked,
            anchor_seq=result.anchor_seq if anchor_hash else None,
            anchor_hash=anchor_hash,
        )
    )
    session.flush()


def verify_with_bus(
    session: Session,
    bus: Bus,
    *,
    incremental: bool = False,
    timeout_s: float = 30.0,
    until: int | None = None,
) -> AuditVerification:
    """:func:`verify` (or :func:`verify_incremental`; up to entry ``until`` when given) against the
    checkpoints published on ``platform.catalog``, recorded; 503 if the bus cannot be read (a verification without them
    would vouch for what the database says alone)."""
    try:
        published = published_checkpoints(bus, timeout_s=timeout_s)
    except BusError as error:
        raise ServiceUnavailable(
            Sentence(
                N_("the audit checkpoints on %(topic)s cannot be read: %(error)s"),
                topic=catalog_events.TOPIC,
                error=error,
            )
        ) from error
    if incremental:
        return verify_incremental(session, published)
    result = verify(session, published, until=until)
    record_verification(session, result)
    return result


def _check_entry(
    entry: AuditEntry, expected_seq: int, expected_prev: str, checkpoints: Mapping[int, str]
) -> ChainBreak | None:
    if entry.seq != expected_seq:
        return ChainBreak(seq=expected_seq, reason=f"entry {expected_seq} is missing (next is {entry.seq})")
    if entry.prev_hash != expected_prev:
        return ChainBreak(seq=entry.seq, reason="its previous hash does not match the entry before it")
    if entry_hash(entry) != entry.hash:
        return ChainBreak(seq=entry.seq, reason="its content does not match its hash: the entry was changed")
    if entry.seq in checkpoints and checkpoints[entry.seq] != entry.hash:
        return ChainBreak(seq=entry.seq, reason="its hash differs from the checkpoint taken at this entry")
    return None


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: str | None = None
    dataset: str | None = None
    department: str | None = None
    scenario: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor(Sentence(N_("the cursor is not one this endpoint returned"))) from None


def visible_to(principal: Principal) -> sa.ColumnElement[bool] | None:
    """What part of the trail a principal may read: None for all (operators and admins)."""
    if principal.kind in (PrincipalKind.admin, PrincipalKind.operator):
        return None
    if principal.kind is PrincipalKind.scenario:
        return AuditEntry.scenario_id == principal.id
    if principal.kind is PrincipalKind.evaluator:
        # The evidence of every scenario's evaluation: what names a scenario, nothing else.
        return AuditEntry.scenario_id.is_not(None)
    # Departments and their approvers see what concerns their department's datasets.
    return AuditEntry.department_id == (principal.department_id or "")


def list_entries(
    session: Session,
    filters: AuditFilter,
    *,
    scope: sa.ColumnElement[bool] | None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[AuditEntry], str | None]:
    """Entries matching ``filters`` within ``scope``, newest first, ``limit`` per page."""
    query = sa.select(AuditEntry)
    if scope is not None:
        query = query.where(scope)
    for column, value in (
        (AuditEntry.actor_id, filters.actor),
        (AuditEntry.resource_type, filters.resource_type),
        (AuditEntry.resource_id, filters.resource_id),
        (AuditEntry.outcome, filters.outcome),
        (AuditEntry.dataset_id, filters.dataset),
        (AuditEntry.department_id, filters.department),
        (AuditEntry.scenario_id, filters.scenario),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.action is not None:
        # "grant" matches grant.revoke and grant.update; "grant.revoke" only itself.
        query = query.where(
            sa.or_(
                AuditEntry.action == filters.action,
                AuditEntry.action.startswith(f"{filters.action}.", autoescape=True),
            )
        )
    if filters.since is not None:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.at < filters.until)
    if cursor:
        query = query.where(AuditEntry.seq < _decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, _encode_cursor(rows[-1].seq) if more and rows else None


# --- checkpoints, periodically ----------------------------------------------------------------


class AuditCheckpointer:
    """Checkpoints the head every ``interval_s`` when it moved, in the catalog's lifespan."""

    def __init__(self, engine: Engine, outbox: Outbox, *, interval_s: float = 60.0) -> None:
        self._sessions: sessionmaker[Session] = db.session_factory(engine)
        self._outbox = outbox
        self._interval_s = interval_s
        self._timer = Periodic("audit-checkpoints", interval_s, self._tick)

    def start(self) -> None:
        self._timer.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._timer.stop(timeout_s)

    def checkpoint_once(self) -> AuditCheckpoint | None:
        with db.unit_of_work(self._sessions) as session:
            return checkpoint(session, self._outbox)

    def checkpoint_in(self, session: Session) -> AuditCheckpoint | None:
        """:func:`checkpoint` in the caller's unit of work, published as the periodic ones are."""
        return checkpoint(session, self._outbox)

    def _tick(self) -> None:
        try:
            self.checkpoint_once()
        except Exception:
            log.warning("audit checkpoint failed; retrying in %.0f s", self._interval_s, exc_info=True)


def take_checkpoint(session: Session, checkpointer: AuditCheckpointer, *, audit: Auditor) -> AuditCheckpoint:
    """A checkpoint now, at an entry saying who asked for it (so the head has moved and the
    checkpoint is new); published on ``platform.catalog`` once the request commits, like the
    periodic ones. An evaluation report computed after it can name it."""
    audit.record(session, action="audit.checkpoint", resource_type="audit", resource_id="head")
    point = checkpointer.checkpoint_in(session)
    if point is None:  # the entry above moved the head: only a broken head row gets here
        raise RuntimeError("the audit head did not move: run the catalog's migrations")
    return point
