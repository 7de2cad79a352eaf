"""One way to run something in the background: every thread of citybase is started here.

- :class:`Loop`: a named daemon thread running a body until it is stopped; ``start``, ``stop``
  (wake the body, join it within a timeout), ``alive``, ``last_error`` and a ``readiness`` check a
  service can register. Workers, relays, read models, pushers and the bus's own threads are loops.
- :class:`Periodic`: a loop that calls a tick every ``interval_s`` and stops promptly (the
  freshness check, gauges, checkpoints, janitors).
- :class:`WhenBusAnswers`: does what needs the bus (ensure topics) once the bus answers, retrying
  with backoff, then starts the tasks that follow from it; a service comes up while Kafka is still
  down and says so in ``/readyz``.
- :class:`Runs`: what a service runs, started in order and stopped in the reverse order.
- :func:`detached`: a fire-and-forget call on a thread of its own (nobody joins it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Task(Protocol):
    """Something a service runs in the background: started once, stopped once."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def describe(error: BaseException) -> str:
    """How a failure reads in ``last_error`` and in readiness reasons."""
    return f"{type(error).__name__}: {error}"


class Loop:
    """Runs ``body(loop)`` on a named daemon thread; the body returns once ``loop.stopping``.

    ``wake`` is called by :meth:`stop` after the stop flag is set, for a body that waits on
    something else than :meth:`wait` (a condition, a queue). An exception that escapes the body
    ends the thread: it is logged and kept in ``last_error``; bodies that carry on after a failure
    set ``last_error`` themselves (and clear it when they recover).
    """

    def __init__(
        self,
        name: str,
        body: Callable[[Loop], None],
        *,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._body = body
        self._wake = wake
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait(self, timeout_s: float | None) -> bool:
        """Sleep up to ``timeout_s``, cut short by :meth:`stop`; True if the loop is stopping."""
        return self._stopping.wait(timeout_s)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was started already")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = 10.0) -> None:
        """Ask the body to return and wait for it at most ``timeout_s`` (None: as long as it takes)."""
        self._stopping.set()
        if self._wake is not None:
            self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def readiness(self) -> str | None:
        """A readiness check: None while the thread runs."""
        if self.alive:
            return None
        return "not running" + (f" (last error: {self.last_error})" if self.last_error else "")

    def fail(self, error: BaseException) -> str:
        """Keep ``error`` as the last error; returns how it reads."""
        self.last_error = describe(error)
        return self.last_error

    def _run(self) -> None:
        try:
            self._body(self)
        except Exception as error:
            self.fail(error)
            log.exception("%s stopped: it failed", self.name)


class Periodic(Loop):
    """Calls ``tick`` every ``interval_s`` (first right away with ``immediately``) until stopped.

    A failing tick is logged and kept in ``last_error``; the next tick comes on time.
    """

    def __init__(
        self, name: str, interval_s: float, tick: Callable[[], Any], *, immediately: bool = False
    ) -> None:
        super().__init__(name, self._every)
        self.interval_s = interval_s
        self._tick = tick
        self._immediately = immediately
        self.runs = 0

    def _every(self, loop: Loop) -> None:
        if self._immediately:
            self.tick_once()
        while not self.wait(self.interval_s):
            self.tick_once()

    def tick_once(self) -> None:
        try:
            self._tick()
            self.runs += 1
            self.last_error = None
        except Exception as error:
            self.fail(error)
            log.exception("%s failed; trying again at the next tick", self.name)


def until_bus_answers(
    loop: Loop,
    attempt: Callable[[], object],
    *,
    what: str,
    backoff_s: float = 0.5,
    max_backoff_s: float = 5.0,
) -> bool:
    """Call ``attempt`` until it raises no :class:`BusError`, waiting longer after each failure
    (up to ``max_backoff_s``); the failure is kept in ``loop.last_error`` meanwhile and cleared
    on success. False if the loop was stopped first."""
    # Imported here: the bus starts its own threads with this module, which must not need it.
    from services.common.bus import BusError

    while not loop.stopping:
        try:
            attempt()
        except BusError as error:
            loop.fail(error)
            log.warning("%s: cannot reach the bus yet: %s", what, error)
            loop.wait(backoff_s)
            backoff_s = min(backoff_s * 2, max_backoff_s)
        else:
            loop.last_error = None
            return True
    return False


class WhenBusAnswers:
    """Runs ``prepare`` once the bus answers (retrying with backoff), then starts ``runs``; on
    stop, stops them in the reverse order. The app's start is never held up by the bus."""

    def __init__(
        self,
        name: str,
        prepare: Callable[[], object],
        runs: Sequence[Task] = (),
        *,
        backoff_s: float = 0.5,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._prepare = prepare
        self._runs = Runs(*runs)
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._answered = threading.Event()
        self._loop = Loop(f"{name}-when-bus-answers", self._start_when_answered)

    def _start_when_answered(self, loop: Loop) -> None:
        prepared = until_bus_answers(
            loop,
            self._prepare,
            what=self._loop.name,
            backoff_s=self._backoff_s,
            max_backoff_s=self._max_backoff_s,
        )
        if prepared and not loop.stopping:
            self._runs.start()
            self._answered.set()

    @property
    def answered(self) -> bool:
        return self._answered.is_set()

    def wait_answered(self, timeout_s: float) -> bool:
        return self._answered.wait(timeout_s)

    @property
    def last_error(self) -> str | None:
        return self._loop.last_error

    def readiness(self) -> str | None:
        """A readiness check: why the bus-bound tasks have not started yet."""
        if self.last_error:
            return f"cannot reach the bus: {self.last_error}"
        return None

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._runs.stop()


class Runs:
    """What a service runs in the background: started in the order given, stopped in reverse.

    Only what started is stopped (a start that failed leaves the later tasks unstarted), and once
    stopped nothing starts any more: a task whose start races the service's shutdown (a
    :class:`WhenBusAnswers` whose bus answers just then) is not left running.
    """

    def __init__(self, *tasks: Task) -> None:
        self.tasks = tasks
        self._started: list[Task] = []
        self._stopped = False
        self._lock = threading.Lock()

    def start(self) -> None:
        for task in self.tasks:
            with self._lock:
                if self._stopped:
                    return
                task.start()
                self._started.append(task)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            started, self._started = self._started, []
        for task in reversed(started):
            task.stop()


def detached(name: str, call: Callable[..., object], *args: object) -> None:
    """``call(*args)`` on a daemon thread of its own that nobody waits for: a failure is logged."""

    def run() -> None:
        try:
            call(*args)
        except Exception:
            log.exception("%s failed", name)

    threading.Thread(target=run, name=name, daemon=True).start()
