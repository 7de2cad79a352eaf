"""Tumbling windows of a dataset's stream, their scores, and the rolling 24 h view of primary keys.

A window collects what ``ds.<dataset>`` (accepted records) and ``dlq.<dataset>`` (rejected ones)
carry for one dataset, and closes after N records or T seconds, whichever comes first (per
dataset, :class:`~services.quality.settings.WindowSize`). The first offset each partition
contributed is kept, so that the worker commits a partition only up to the first record of a
window whose results are not stored yet: after a crash the window is read again, whole.
:class:`WindowScore` is what scoring makes of a closed window; the scorer stores it and the
metrics observe it, so it lives here, below both.
"""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from services.common.bus import Message, TopicPartition
from services.common.topics import dataset_of
from services.quality.expectations import RuleResult


def _text(message: Message, name: str) -> str | None:
    raw = message.header(name)
    return raw.decode("utf-8", "replace") if raw is not None else None


@dataclass
class Window:
    """The records of one dataset since the window opened."""

    dataset_id: str
    opened_at: datetime
    opened_monotonic: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    event_ids: list[str | None] = field(default_factory=list)
    ingest_ms: list[int] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0
    rejected: int = 0
    rejected_rules: Counter[str] = field(default_factory=Counter)
    rejected_incomplete: int = 0
    rejected_missing: Counter[str] = field(default_factory=Counter)
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    closed_because: str = ""

    @property
    def size(self) -> int:
        return len(self.rows) + self.unreadable + self.rejected

    @property
    def accepted(self) -> int:
        return len(self.rows) + self.unreadable

    def add(self, message: Message, dead_letter: bool) -> None:
        self.first_offsets.setdefault(message.topic_partition, message.offset)
        if dead_letter:
            self._add_dead_letter(message)
        else:
            self._add_record(message)

    def _add_record(self, message: Message) -> None:
        record = _json_object(message.value)
        if record is None:
            self.unreadable += 1
            return
        self.rows.append(record)
        # Both headers in one pass over the record's ten (the last of a name counts, as in header()).
        event_id = version = None
        for name, raw in message.headers:
            if name == "ce_id":
                event_id = raw
            elif name == "ce_contractversion":
                version = raw
        self.event_ids.append(event_id.decode("utf-8", "replace") if event_id is not None else None)
        self.ingest_ms.append(message.timestamp_ms)
        if version:
            self.versions[version.decode("utf-8", "replace")] += 1

    def _add_dead_letter(self, message: Message) -> None:
        self.rejected += 1
        self.rejected_rules[_text(message, "dlq_reason") or "unknown"] += 1
        missing = _missing_required(message)
        if missing:
            self.rejected_incomplete += 1
            self.rejected_missing.update(missing)

    @property
    def contract_version(self) -> str | None:
        """The version most records of the window were written for."""
        return self.versions.most_common(1)[0][0] if self.versions else None


def _json_object(value: bytes | None) -> dict[str, Any] | None:
    """The record a value holds, or None when it is no JSON object.

    orjson first (a few times faster on a record); what it refuses and Python's parser takes
    (integers beyond 64 bits, NaN) is read by the latter, so the two agree on what is readable.
    """
    if value is None:
        return None
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        try:
            record = json.loads(value)
        except ValueError:
            return None
    return record if isinstance(record, dict) else None


def _missing_required(message: Message) -> list[str]:
    """Fields a dead letter was rejected for missing (ingest's ``required`` violations)."""
    raw = message.header("dlq_errors")
    errors: Any = None
    if raw is not None:
        try:
            errors = json.loads(raw)
        except ValueError:
            errors = None
    if not isinstance(errors, list):
        errors = [{"rule": _text(message, "dlq_reason"), "path": _text(message, "dlq_path")}]
    missing = []
    for error in errors:
        if isinstance(error, dict) and error.get("rule") == "required":
            path = str(error.get("path") or "")
            missing.append(path.lstrip("/").split("/", 1)[0] or "?")
    return missing


class WindowSet:
    """The open window of every dataset, and the ones closed but not yet stored."""

    def __init__(
        self,
        size_of: Callable[[str], tuple[int, float]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._size_of = size_of
        self._clock = clock
        self.open: dict[str, Window] = {}
        self.closed: list[Window] = []

    def add(self, message: Message) -> bool:
        """File one message under its dataset's window; False if it is no ds./dlq. record."""
        found = dataset_of(message.topic)
        if found is None:
            return False
        dataset_id, dead_letter = found
        window = self.open.get(dataset_id)
        if window is None:
            window = self.open[dataset_id] = Window(dataset_id, self._clock(), time.monotonic())
        window.add(message, dead_letter)
        if window.size >= self._size_of(dataset_id)[0]:
            self._close(dataset_id, "records")
        return True

    def close_due(self) -> None:
        """Close the windows that have been open for their time."""
        now = time.monotonic()
        for dataset_id, window in list(self.open.items()):
            if now - window.opened_monotonic >= self._size_of(dataset_id)[1]:
                self._close(dataset_id, "time")

    def close_all(self, reason: str) -> None:
        for dataset_id in list(self.open):
            self._close(dataset_id, reason)

    def _close(self, dataset_id: str, reason: str) -> None:
        window = self.open.pop(dataset_id)
        window.closed_because = reason
        self.closed.append(window)

    def drop(self, tps: set[TopicPartition]) -> list[Window]:
        """Forget the windows (open or closed, not stored) holding records of ``tps``: their
        records are read again (from the committed offsets, or where the caller seeks)."""
        dropped = [w for w in [*self.open.values(), *self.closed] if tps & w.first_offsets.keys()]
        for window in dropped:
            self.open.pop(window.dataset_id, None)
        self.closed = [w for w in self.closed if w not in dropped]
        return dropped

    def take_closed(self) -> list[Window]:
        closed, self.closed = self.closed, []
        return closed

    def clear(self) -> None:
        self.open.clear()
        self.closed.clear()

    def committable(self, positions: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Offsets safe to commit: each partition up to the first record of an unstored window."""
        pending: dict[TopicPartition, int] = {}
        for window in [*self.open.values(), *self.closed]:
            for tp, offset in window.first_offsets.items():
                pending[tp] = min(offset, pending.get(tp, offset))
        return {tp: pending.get(tp, position) for tp, position in positions.items()}


class RollingKeys:
    """The primary keys of one dataset seen in the rolling view (24 h), with their event ids."""

    def __init__(self, span_s: float, max_keys: int) -> None:
        self._span_s = span_s
        self._max_keys = max_keys
        self._seen: OrderedDict[Any, tuple[str | None, float]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._seen)

    def duplicates(
        self, keys: Sequence[Any], event_ids: Sequence[str | None], now_s: float
    ) -> tuple[int, int, list[Any]]:
        """(duplicates within the window, duplicates of the rolling view, a few repeated keys).

        A key repeated under the same event id is a redelivery, not a duplicate. The window's keys
        join the view afterwards.
        """
        self._expire(now_s)
        in_window: dict[Any, str | None] = {}
        window_duplicates = rolling_duplicates = 0
        repeated: list[Any] = []
        for key, event_id in zip(keys, event_ids, strict=True):
            if key is None:
                continue
            earlier = in_window.get(key, _ABSENT)
            if earlier is not _ABSENT:
                if earlier != event_id or event_id is None:
                    window_duplicates += 1
                    if len(repeated) < 20:
                        repeated.append(key)
                continue
            in_window[key] = event_id
            seen = self._seen.get(key)
            if seen is not None and (seen[0] != event_id or event_id is None):
                rolling_duplicates += 1
                if len(repeated) < 20:
                    repeated.append(key)
        for key, event_id in in_window.items():
            self._seen[key] = (event_id, now_s)
            self._seen.move_to_end(key)
        while len(self._seen) > self._max_keys:
            self._seen.popitem(last=False)
            self.evicted += 1
        return window_duplicates, rolling_duplicates, repeated

    def _expire(self, now_s: float) -> None:
        horizon = now_s - self._span_s
        while self._seen:
            _key, (_event, seen_at) = next(iter(self._seen.items()))
            if seen_at >= horizon:
                break
            self._seen.popitem(last=False)


_ABSENT: Any = object()


def key_of(row: dict[str, Any], fields: Iterable[str]) -> Any:
    """The primary key of a record as a hashable value; None if part of it is missing."""
    values = []
    for name in fields:
        value = row.get(name)
        if value is None:
            return None
        values.append(json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value)
    return values[0] if len(values) == 1 else tuple(values)


@dataclass
class WindowScore:
    """A scored window, ready to store: scores, counts, evidence and the problems met."""

    dataset_id: str
    contract_version: str | None
    opened_at: datetime
    closed_at: datetime
    records: int
    accepted: int
    rejected: int
    scores: dict[str, float | None]
    overall: float | None
    duplicates: int = 0
    late: int = 0
    measured: int = 0
    freshness_s: float | None = None
    lateness_p95_s: float | None = None
    frequency_s: float = 3600.0
    latency_s: float = 3600.0
    last_event_at: datetime | None = None
    latency_breached: bool = False
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    rules: list[RuleResult] = field(default_factory=list)
    kind: str = "window"
