"""Repeated identical refusals, audited as one entry with a count.

Every refusal is on record, but a principal that asks the same forbidden thing over and over must
not be able to grow the trail without limit, nor hold the audit head lock (which every audited
write of the catalog waits for) once per attempt. The first refusal of a kind (same principal,
action, resource, status and reason) is appended at once, as before; identical ones within the
next ``window_s`` seconds are only counted, in memory, without touching the database. When the
window closes, one more entry says how many there were, between which times; it is appended to
the chain like any other, so the chain stays verifiable end to end.

The count lives in the process until its window closes: a window is closed by the next
identical refusal after it, by :meth:`RefusalWindows.flush_due` (run every few seconds by
:class:`RefusalRecorder`) and by the recorder's ``stop``, so a clean shutdown loses none. Each
catalog replica counts its own refusals: N replicas write at most N summaries per window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.common import db
from services.common.background import Periodic

if TYPE_CHECKING:
    from services.catalog.audit.service import AuditEvent

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass
class _Window:
    opened: float  # monotonic
    event: AuditEvent  # the first refusal, the template of the summary
    first_at: datetime
    last_at: datetime
    repeated: int = 0


@dataclass(frozen=True)
class Summary:
    """How many more times a refusal was repeated within its window, to be appended."""

    event: AuditEvent
    repeated: int
    first_at: datetime
    last_at: datetime
    window_s: float

    def audit_event(self) -> AuditEvent:
        details = {
            **self.event.details,
            "repeated": self.repeated,
            "first_at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "window_s": self.window_s,
        }
        return replace(self.event, details=details)


class RefusalWindows:
    """The open windows of identical refusals; thread-safe, bounded to ``max_open`` windows."""

    def __init__(
        self, window_s: float = 60.0, *, max_open: int = 10_000, clock: Clock = time.monotonic
    ) -> None:
        self.window_s = window_s
        self._max_open = max_open
        self._clock = clock
        self._open: OrderedDict[Hashable, _Window] = OrderedDict()
        self._closed: list[Summary] = []
        self._lock = threading.Lock()

    def admit(self, key: Hashable, event: AuditEvent) -> bool:
        """True when this refusal is to be appended now (the first of its window), False when it
        is counted into an open window."""
        now, at = self._clock(), datetime.now(UTC)
        with self._lock:
            window = self._open.get(key)
            if window is not None and now - window.opened < self.window_s:
                window.repeated += 1
                window.last_at = at
                return False
            if window is not None:
                self._close(key)
            while len(self._open) >= self._max_open:
                self._close(next(iter(self._open)))
            self._open[key] = _Window(opened=now, event=event, first_at=at, last_at=at)
            return True

    def take_due(self, *, everything: bool = False) -> list[Summary]:
        """The summaries of the windows that closed (all open ones with ``everything``), removed."""
        now = self._clock()
        with self._lock:
            for key in [k for k, w in self._open.items() if everything or now - w.opened >= self.window_s]:
                self._close(key)
            closed, self._closed = self._closed, []
            return closed

    def put_back(self, summaries: list[Summary]) -> None:
        """Summaries that could not be appended, for the next attempt."""
        with self._lock:
            self._closed[:0] = summaries

    def _close(self, key: Hashable) -> None:
        window = self._open.pop(key)
        if window.repeated:
            self._closed.append(
                Summary(window.event, window.repeated, window.first_at, window.last_at, self.window_s)
            )


def refusal_key(event: AuditEvent) -> Hashable:
    """What makes two refusals the same: who, what, on which resource, and why."""
    details = event.details
    return (
        event.actor_id,
        event.action,
        event.resource_type,
        event.resource_id,
        details.get("status"),
        details.get("problem"),
        details.get("reason"),
    )


class RefusalRecorder:
    """Appends the summaries of closed windows every ``interval_s``, and all of them on stop."""

    def __init__(
        self,
        engine: Engine,
        windows: RefusalWindows,
        append: Callable[[Session, AuditEvent], object],
        *,
        interval_s: float = 5.0,
    ) -> None:
        self._sessions: sessionmaker[Session] = db.session_factory(engine)
        self.windows = windows
        self._append = append
        self._interval_s = interval_s
        self._timer = Periodic("audit-refusals", interval_s, self._tick)

    def start(self) -> None:
        self._timer.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._timer.stop(timeout_s)
        try:
            self.flush(everything=True)
        except Exception:
            log.exception("could not audit the counts of repeated refusals on shutdown")

    def flush(self, *, everything: bool = False) -> int:
        """Append the summaries due now (every open window with ``everything``); how many."""
        summaries = self.windows.take_due(everything=everything)
        if not summaries:
            return 0
        try:
            with db.unit_of_work(self._sessions) as session:
                for summary in summaries:
                    self._append(session, summary.audit_event())
        except Exception:
            self.windows.put_back(summaries)
            raise
        return len(summaries)

    def _tick(self) -> None:
        try:
            self.flush()
        except Exception:
            log.warning(
                "could not audit repeated refusals; retrying in %.0f s", self._interval_s, exc_info=True
            )
