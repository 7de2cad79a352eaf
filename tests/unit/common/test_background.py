"""The one way citybase runs things in the background: loops, periodic tasks, "when the bus
answers", the start and stop order of what a service runs, and fire-and-forget calls."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

from services.common.background import Loop, Periodic, Runs, WhenBusAnswers, detached, until_bus_answers
from services.common.bus import BusUnavailable
from services.common.worker import wait_until

ROOT = Path(__file__).resolve().parents[3]


def test_a_loop_runs_until_stopped_and_says_whether_it_is_alive() -> None:
    turns: list[int] = []

    def body(loop: Loop) -> None:
        while not loop.wait(0.01):
            turns.append(1)

    loop = Loop("test-loop", body)
    assert not loop.alive and not loop.started
    assert loop.readiness() == "not running"
    loop.start()
    assert loop.alive and loop.readiness() is None
    assert wait_until(lambda: len(turns) >= 3, 2)
    started = time.monotonic()
    loop.stop(2)
    assert time.monotonic() - started < 1, "stop must cut the wait short"
    assert not loop.alive and loop.stopping
    assert loop.last_error is None


def test_a_loop_cannot_be_started_twice() -> None:
    loop = Loop("test-twice", lambda loop: None)
    loop.start()
    with pytest.raises(RuntimeError):
        loop.start()
    loop.stop(1)


def test_a_body_that_fails_ends_the_loop_and_leaves_its_last_error(caplog: pytest.LogCaptureFixture) -> None:
    def body(loop: Loop) -> None:
        raise ValueError("the database is gone")

    loop = Loop("test-failing", body)
    loop.start()
    assert wait_until(lambda: not loop.alive, 2)
    assert loop.last_error == "ValueError: the database is gone"
    assert loop.readiness() == "not running (last error: ValueError: the database is gone)"
    assert "test-failing stopped" in caplog.text
    loop.stop(1)


def test_stop_wakes_a_body_that_waits_on_something_else() -> None:
    woken = threading.Event()

    def body(loop: Loop) -> None:
        woken.wait(5)

    loop = Loop("test-wake", body, wake=woken.set)
    loop.start()
    started = time.monotonic()
    loop.stop(2)
    assert time.monotonic() - started < 1
    assert not loop.alive


def test_stop_before_start_does_nothing() -> None:
    Loop("test-unstarted", lambda loop: None).stop(1)


def test_a_periodic_task_ticks_at_its_interval_and_stops_promptly() -> None:
    ticks: list[float] = []
    periodic = Periodic("test-periodic", 0.05, lambda: ticks.append(time.monotonic()))
    periodic.start()
    assert wait_until(lambda: len(ticks) >= 4, 2)
    started = time.monotonic()
    periodic.stop(2)
    assert time.monotonic() - started < 0.5
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert all(gap >= 0.04 for gap in gaps), gaps
    assert periodic.runs == len(ticks)


def test_a_periodic_task_waits_an_interval_before_its_first_tick_unless_immediately() -> None:
    later: list[int] = []
    now: list[int] = []
    waiting = Periodic("test-later", 30, lambda: later.append(1))
    eager = Periodic("test-now", 30, lambda: now.append(1), immediately=True)
    waiting.start()
    eager.start()
    assert wait_until(lambda: now == [1], 2)
    assert later == []
    eager.stop(1)
    waiting.stop(1)


def test_a_failing_tick_is_kept_and_the_next_tick_comes(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("not yet")

    periodic = Periodic("test-flaky", 0.02, tick)
    periodic.start()
    assert wait_until(lambda: len(calls) >= 2, 2)
    assert wait_until(lambda: periodic.last_error is None, 2)
    periodic.stop(1)
    assert periodic.alive is False
    assert "test-flaky failed; trying again at the next tick" in caplog.text


class _Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_runs_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []
    runs = Runs(_Recorder("relay", log), _Recorder("projection", log), _Recorder("scorer", log))
    runs.start()
    runs.stop()
    runs.stop()  # a second stop stops nothing again
    assert log == [
        "start relay",
        "start projection",
        "start scorer",
        "stop scorer",
        "stop projection",
        "stop relay",
    ]


def test_runs_stop_only_what_started() -> None:
    log: list[str] = []

    class Broken(_Recorder):
        def start(self) -> None:
            raise RuntimeError("cannot start")

    runs = Runs(_Recorder("relay", log), Broken("broken", log), _Recorder("scorer", log))
    with pytest.raises(RuntimeError):
        runs.start()
    runs.stop()
    assert log == ["start relay", "stop relay"]


def test_nothing_starts_once_runs_are_stopped() -> None:
    log: list[str] = []
    runs = Runs(_Recorder("relay", log))
    runs.stop()
    runs.start()
    assert log == []


def test_a_bus_that_answers_during_shutdown_starts_nothing() -> None:
    log: list[str] = []
    answering = threading.Event()
    release = threading.Event()

    def prepare() -> None:
        answering.set()
        release.wait(2)

    on_bus = WhenBusAnswers("test", prepare, [_Recorder("projection", log)])
    on_bus.start()
    assert answering.wait(2)
    stopping = threading.Thread(target=on_bus.stop)
    stopping.start()
    time.sleep(0.3)  # stop has set the flag and waits for prepare to return
    release.set()
    stopping.join(5)
    assert not stopping.is_alive()
    assert log == []
    assert not on_bus.answered


class _Bus:
    """A bus that fails ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0

    def ensure_topics(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise BusUnavailable(f"no broker (attempt {self.attempts})")


def test_when_the_bus_answers_after_failing_the_tasks_start_and_stop_in_reverse() -> None:
    log: list[str] = []
    bus = _Bus(failures=2)
    on_bus = WhenBusAnswers(
        "test",
        bus.ensure_topics,
        [_Recorder("projection", log), _Recorder("worker", log)],
        backoff_s=0.01,
        max_backoff_s=0.05,
    )
    on_bus.start()
    assert on_bus.wait_answered(2)
    assert bus.attempts == 3
    assert on_bus.last_error is None and on_bus.readiness() is None
    on_bus.stop()
    assert log == ["start projection", "start worker", "stop worker", "stop projection"]


def test_while_the_bus_does_not_answer_readiness_says_why_and_nothing_starts() -> None:
    log: list[str] = []
    bus = _Bus(failures=1_000_000)
    on_bus = WhenBusAnswers("test", bus.ensure_topics, [_Recorder("projection", log)], backoff_s=0.01)
    on_bus.start()
    assert wait_until(lambda: bus.attempts >= 2, 2)
    assert not on_bus.answered
    reason = on_bus.readiness()
    assert reason is not None and reason.startswith("cannot reach the bus: BusUnavailable: no broker")
    started = time.monotonic()
    on_bus.stop()
    assert time.monotonic() - started < 1
    assert log == []


def test_retries_back_off_up_to_the_limit() -> None:
    waits: list[float | None] = []

    class Recording(Loop):
        def wait(self, timeout_s: float | None) -> bool:
            waits.append(timeout_s)
            return False

    bus = _Bus(failures=5)
    loop = Recording("test-backoff", lambda loop: None)
    assert until_bus_answers(loop, bus.ensure_topics, what="test", backoff_s=0.1, max_backoff_s=0.5)
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert loop.last_error is None


def test_only_bus_errors_are_retried() -> None:
    def broken() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        until_bus_answers(Loop("test-bug", lambda loop: None), broken, what="test")


def test_a_detached_call_runs_on_its_own_thread_and_its_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    detached("test-detached", lambda who: ran.append(threading.current_thread().name + who), "!")
    assert wait_until(lambda: ran == ["test-detached!"], 2)

    def fails() -> None:
        raise RuntimeError("closing failed")

    detached("test-detached-failing", fails)
    assert wait_until(lambda: "test-detached-failing failed" in caplog.text, 2)


def test_threads_are_started_only_by_the_background_module() -> None:
    """Every thread of citybase goes through services/common/background.py: one way to start,
    stop, report and log them."""
    kernel = ROOT / "services" / "common" / "background.py"
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("services", "citybase")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != kernel
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "threading.Thread(" in line
    ]
    assert offenders == []
    assert "threading.Thread(" in kernel.read_text(encoding="utf-8")
