"""Identical refusals within a window: the first is appended, the repeats become one count."""

from __future__ import annotations

from services.catalog.audit.refusals import RefusalWindows, refusal_key
from services.catalog.audit.service import DENIED, AuditEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _refusal(
    actor: str = "ai-community", resource: str = "g-1", problem: str = "not-your-scenario"
) -> AuditEvent:
    details = {"status": 403, "problem": problem, "reason": "a scenario sees only its own grants"}
    return AuditEvent("grant.read", "grant", resource, outcome=DENIED, actor_id=actor, details=details)


def _admit(windows: RefusalWindows, event: AuditEvent) -> bool:
    return windows.admit(refusal_key(event), event)


def test_repeats_within_the_window_are_counted_and_summarised_when_it_closes() -> None:
    clock = Clock()
    windows = RefusalWindows(60.0, clock=clock)
    assert [_admit(windows, _refusal()) for _ in range(5)] == [True, False, False, False, False]
    assert windows.take_due() == []  # the window is still open
    clock.now += 60.0
    (summary,) = windows.take_due()
    assert summary.repeated == 4
    event = summary.audit_event()
    assert (event.action, event.resource_id, event.outcome) == ("grant.read", "g-1", DENIED)
    assert event.details["repeated"] == 4 and event.details["problem"] == "not-your-scenario"
    # A window without repeats needs no summary; the next refusal opens a new window.
    assert _admit(windows, _refusal()) is True
    clock.now += 61.0
    assert windows.take_due() == []


def test_a_refusal_differing_in_who_what_or_why_is_its_own_entry() -> None:
    windows = RefusalWindows(60.0, clock=Clock())
    firsts = [
        _admit(windows, event)
        for event in (
            _refusal(),
            _refusal(actor="one-stop-visit"),
            _refusal(resource="g-2"),
            _refusal(problem="forbidden"),
        )
    ]
    assert firsts == [True, True, True, True]


def test_the_open_windows_are_bounded_and_the_oldest_closes_first() -> None:
    windows = RefusalWindows(60.0, max_open=2, clock=Clock())
    for resource in ("g-1", "g-1", "g-2", "g-3"):
        _admit(windows, _refusal(resource=resource))
    (closed,) = windows.take_due()
    assert (closed.event.resource_id, closed.repeated) == ("g-1", 1)
    assert [s.event.resource_id for s in windows.take_due(everything=True)] == []  # g-2, g-3: no repeats
