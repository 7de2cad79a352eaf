"""Streaming generated batches at a rate through any ``publish`` function, and what happened to them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from citybase.demo.generator import RecordGenerator


@dataclass
class DatasetStats:
    """What happened to one dataset's records during a demo."""

    dataset: str
    generated: int = 0
    sent: int = 0
    """Records in batches ingest answered (202)."""
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    lost: int = 0
    """Records in batches that failed even after the retries (none of them accepted)."""
    batches: int = 0
    failed_batches: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    """Rules broken by rejected records, as ingest reported them."""
    stopped: str | None = None
    """Why the demo stopped sending to this dataset (a refusal that retrying cannot fix)."""
    last_problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "generated": self.generated,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "faults": dict(sorted(self.faults.items())),
            "rules": dict(sorted(self.rules.items())),
            "stopped": self.stopped,
        }


@dataclass
class DemoStats:
    datasets: dict[str, DatasetStats]
    started: float
    elapsed_s: float = 0.0

    def total(self, name: str) -> int:
        return sum(int(getattr(stats, name)) for stats in self.datasets.values())

    def rate(self, count: int) -> float:
        return count / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        sent = self.total("sent")
        rejected = self.total("rejected")
        faults: Counter[str] = Counter()
        for stats in self.datasets.values():
            faults.update(stats.faults)
        return {
            "elapsed_s": round(self.elapsed_s, 3),
            "generated": self.total("generated"),
            "sent": sent,
            "accepted": self.total("accepted"),
            "rejected": rejected,
            "duplicates": self.total("duplicates"),
            "lost": self.total("lost"),
            "rejected_share": round(rejected / sent, 4) if sent else 0.0,
            "records_per_s": round(self.rate(sent), 1),
            "faults": dict(sorted(faults.items())),
            "datasets": {name: stats.as_dict() for name, stats in self.datasets.items()},
        }


@dataclass(frozen=True)
class BatchOutcome:
    """What :func:`stream` needs of a publish: the counts and the rules broken."""

    accepted: int
    rejected: int
    duplicates: int
    rules: Sequence[str] = ()


class BatchFailed(Exception):
    """A batch got no answer it can use; ``stop`` says retrying the dataset is pointless."""

    def __init__(self, message: str, *, stop: bool) -> None:
        super().__init__(message)
        self.stop = stop


PublishBatch = Callable[[str, list[dict[str, Any]]], BatchOutcome]


def stream(
    generators: Mapping[str, RecordGenerator],
    publish: PublishBatch,
    *,
    rate: float,
    duration_s: float,
    tick_s: float = 0.5,
    max_batch: int = 1000,
    on_tick: Callable[[DemoStats], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stats: DemoStats | None = None,
) -> DemoStats:
    """Send records of every dataset at ``rate`` records per second in total, evenly spread, for
    ``duration_s`` seconds (0: until interrupted), in one batch per dataset per tick.

    A tick that falls behind (a slow answer, a retry) is caught up by the next one, so the
    records sent in a run are ``rate * duration`` whatever the latency. ``publish`` raises
    :class:`BatchFailed` for a batch that failed; with ``stop`` the dataset is left out from then on.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    started = monotonic()
    if stats is None:
        stats = DemoStats({name: DatasetStats(name) for name in generators}, started)
    per_dataset = rate / max(1, len(generators))
    tick = 0
    while True:
        elapsed = monotonic() - started
        final = duration_s > 0 and elapsed >= duration_s
        horizon = duration_s if final else elapsed
        for name, generator in generators.items():
            record_stats = stats.datasets[name]
            if record_stats.stopped:
                continue
            due = int(per_dataset * horizon) - record_stats.generated
            while due > 0 and not record_stats.stopped:
                size = min(due, max_batch)
                due -= size
                _send(name, generator, size, publish, record_stats)
        stats.elapsed_s = max(monotonic() - started, 1e-9)
        if on_tick is not None:
            on_tick(stats)
        if final or all(s.stopped for s in stats.datasets.values()):
            return stats
        tick += 1
        next_at = started + tick * tick_s
        if duration_s > 0:
            next_at = min(next_at, started + duration_s)
        pause = next_at - monotonic()
        if pause > 0:
            sleep(pause)


def _send(
    name: str, generator: RecordGenerator, size: int, publish: PublishBatch, stats: DatasetStats
) -> None:
    batch = generator.generate(size)
    stats.generated += size
    for item in batch:
        if item.fault is not None:
            stats.faults[item.fault.value] += 1
    try:
        outcome = publish(name, [item.record for item in batch])
    except BatchFailed as failure:
        stats.failed_batches += 1
        stats.lost += size
        stats.last_problem = str(failure)
        if failure.stop:
            stats.stopped = str(failure)
        return
    stats.batches += 1
    stats.sent += size
    stats.accepted += outcome.accepted
    stats.rejected += outcome.rejected
    stats.duplicates += outcome.duplicates
    stats.rules.update(outcome.rules)
