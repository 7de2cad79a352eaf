"""Records of one dataset from its record schema, with faults at chosen rates, and the example
contracts they are drawn from."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from citybase.demo.faults import Fault, FaultRates
from citybase.demo.flavours import (
    ABSENT,
    COMMON,
    FLAVOURS,
    FieldContext,
    Flavour,
    maybe_null,
    mobile_phone,
    rfc3339,
    shanghai_now,
)
from citybase.demo.schema_values import SchemaValues, fits, is_date_time, json_types, numeric_bounds


@dataclass(frozen=True)
class GeneratedRecord:
    record: dict[str, Any]
    fault: Fault | None = None
    """The fault injected, if any (a fault that does not apply to the dataset leaves it valid)."""
    field: str | None = None
    """The field the fault touched."""


_UNKNOWN_FIELDS = ("remarks", "source_system", "legacy_code", "operator_note", "batch_no")


class RecordGenerator:
    """Records of one dataset from its record schema, realistic through its :class:`Flavour`.

    With every fault rate 0 each record is valid against ``record_schema``. The same ``rng``
    state and ``clock`` give the same records.

    Example::

        generator = RecordGenerator(record_schema, "market.inspections", random.Random(7))
        batch = generator.records(100)          # list of dicts, ready for Publisher.publish
        faulty = RecordGenerator(record_schema, "market.inspections", random.Random(7),
                                 faults=FaultRates(null=0.05, bad_enum=0.02))
        print(faulty.next().fault)
    """

    def __init__(
        self,
        record_schema: Mapping[str, Any],
        dataset_id: str,
        rng: random.Random,
        *,
        faults: FaultRates | None = None,
        primary_key: Sequence[str] | None = None,
        flavour: Flavour | None = None,
        clock: Callable[[], datetime] = shanghai_now,
        remember_keys: int = 1000,
    ) -> None:
        self.schema = record_schema
        self.dataset_id = dataset_id
        self.rng = rng
        self.faults = faults or FaultRates()
        self.clock = clock
        self.flavour = flavour if flavour is not None else FLAVOURS.get(dataset_id, Flavour())
        self.properties: dict[str, Mapping[str, Any]] = {
            name: sub if isinstance(sub, dict) else {}
            for name, sub in (record_schema.get("properties") or {}).items()
        }
        self.required = [name for name in record_schema.get("required") or () if name in self.properties]
        if primary_key is None:
            primary_key = [n for n, s in self.properties.items() if s.get("x-citybase-primary-key")]
        self.primary_key = list(primary_key)
        self.event_time = self._event_time_field()
        self.times = [n for n, s in self.properties.items() if s.get("format") == "date-time"]
        self.closed = record_schema.get("additionalProperties") is False
        self.sequence = 0
        self.start = rng.randrange(10**9)
        self._values = SchemaValues(rng)
        self._keys: deque[tuple[Any, ...]] = deque(maxlen=remember_keys)

    def _event_time_field(self) -> str | None:
        hinted = self.flavour.event_time
        if hinted in self.properties:
            return hinted
        times = [n for n, s in self.properties.items() if s.get("format") == "date-time"]
        required = [n for n in times if n in self.required]
        return next(iter(required or times), None)

    # --- valid records ------------------------------------------------------------------------

    def valid_record(self) -> dict[str, Any]:
        """One record that satisfies the schema."""
        now = self.clock()
        self.sequence += 1
        record: dict[str, Any] = {}
        required = set(self.required)
        for name, schema in self.properties.items():
            ctx = FieldContext(name, schema, self.rng, now, record, self.sequence, self.start)
            value = self._field_value(ctx, required=name in required)
            if value is not ABSENT:
                record[name] = value
        if self.primary_key and all(name in record for name in self.primary_key):
            self._keys.append(tuple(record[name] for name in self.primary_key))
        return record

    def _field_value(self, ctx: FieldContext, *, required: bool) -> Any:
        flavour = self.flavour.fields.get(ctx.name) or COMMON.fields.get(ctx.name)
        if flavour is None and ctx.name.endswith("_phone"):
            flavour = maybe_null(0.05, mobile_phone)
        nullable = "null" in json_types(ctx.schema)
        if flavour is not None:
            value = flavour(ctx)
            if value is ABSENT and not required:
                return ABSENT
            if value is not ABSENT and fits(value, ctx.schema):
                return value
        elif not required:
            # Without a flavour, an optional field is sometimes missing or null, as in real feeds.
            draw = self.rng.random()
            if draw < 0.03:
                return ABSENT
            if nullable and draw < 0.08:
                return None
        return self._values.value(ctx.schema, ctx)

    # --- faults --------------------------------------------------------------------------------

    def next(self) -> GeneratedRecord:
        """The next record: valid, or carrying one fault drawn at the configured rates."""
        record = self.valid_record()
        draw = self.rng.random()
        for kind, rate in self.faults.items():
            if draw < rate:
                touched = self._inject(kind, record)
                if touched is None:
                    return GeneratedRecord(record)
                return GeneratedRecord(record, kind, touched)
            draw -= rate
        return GeneratedRecord(record)

    def generate(self, count: int) -> list[GeneratedRecord]:
        return [self.next() for _ in range(count)]

    def records(self, count: int) -> list[dict[str, Any]]:
        return [self.next().record for _ in range(count)]

    def __iter__(self) -> Iterator[GeneratedRecord]:
        while True:
            yield self.next()

    def _inject(self, kind: Fault, record: dict[str, Any]) -> str | None:
        if kind is Fault.null:
            return self._null(record)
        if kind is Fault.out_of_range:
            return self._out_of_range(record)
        if kind is Fault.bad_enum:
            return self._bad_enum(record)
        if kind is Fault.schema_break:
            return self._schema_break(record)
        if kind is Fault.duplicate:
            return self._duplicate(record)
        return self._late(record)

    def _null(self, record: dict[str, Any]) -> str | None:
        """A required field missing: what an empty cell of a non-null field becomes."""
        present = [name for name in self.required if name in record]
        if not present:
            return None
        name = self.rng.choice(present)
        del record[name]
        return name

    def _out_of_range(self, record: dict[str, Any]) -> str | None:
        numeric = [
            name
            for name, schema in self.properties.items()
            if {"integer", "number"} & set(json_types(schema))
            and any(b is not None for b in numeric_bounds(schema))
        ]
        if numeric:
            name = self.rng.choice(numeric)
            record[name] = self._beyond(self.properties[name])
            return name
        # No bounded number: a text longer (or shorter) than its contract allows.
        sized = [
            name
            for name, schema in self.properties.items()
            if "string" in json_types(schema)
            and ("maxLength" in schema or schema.get("minLength", 0) > 0)
            and not {"pattern", "enum", "format", "const"} & set(schema)
        ]
        if not sized:
            return None
        name = self.rng.choice(sized)
        schema = self.properties[name]
        if "maxLength" in schema:
            limit = int(schema["maxLength"])
            base = str(record.get(name) or "x")
            record[name] = (base * (limit // len(base) + 2))[: limit + 1 + self.rng.randrange(10)]
        else:
            record[name] = ""
        return name

    def _beyond(self, schema: Mapping[str, Any]) -> int | float:
        low, high = numeric_bounds(schema)
        integer = "integer" in json_types(schema) and "number" not in json_types(schema)
        span = (high - low) if low is not None and high is not None else 100.0
        excess = span * self.rng.uniform(0.05, 0.5) + 1
        above = high is not None and (low is None or self.rng.random() < 0.5)
        if above:
            assert high is not None
            value = math.floor(high) + math.ceil(excess) if integer else round(high + excess, 2)
        else:
            assert low is not None
            value = math.ceil(low) - math.ceil(excess) if integer else round(low - excess, 2)
        return int(value) if integer else float(value)

    def _bad_enum(self, record: dict[str, Any]) -> str | None:
        enumerated = [name for name, schema in self.properties.items() if schema.get("enum")]
        if not enumerated:
            return None
        name = self.rng.choice(enumerated)
        allowed = list(self.properties[name]["enum"])
        typed = [v for v in allowed if v is not None]
        if typed and all(isinstance(v, int) and not isinstance(v, bool) for v in typed):
            record[name] = max(typed) + self.rng.randint(1, 9)
            return name
        sample = str(record.get(name) or self.rng.choice(typed or ["value"]))
        candidates = [
            sample.capitalize(),
            sample.upper(),
            sample.replace("-", "_"),
            f"{sample} District",
            "unknown",
            "N/A",
        ]
        record[name] = next((c for c in candidates if c not in allowed), f"invalid-{sample}")
        return name

    def _schema_break(self, record: dict[str, Any]) -> str | None:
        if self.closed and (not self.properties or self.rng.random() < 0.5):
            name = next(
                (
                    n
                    for n in self.rng.sample(_UNKNOWN_FIELDS, len(_UNKNOWN_FIELDS))
                    if n not in self.properties
                ),
                None,
            )
            if name is not None:
                record[name] = self.rng.choice(["see attachment", "imported from legacy system", "42"])
                return name
        candidates = [name for name in self.required if name in record] or [
            n for n in self.properties if n in record
        ]
        if not candidates:
            return None
        name = self.rng.choice(candidates)
        types = set(json_types(self.properties[name]))
        current = record[name]
        if "string" not in types:
            record[name] = str(current if current is not None else "n/a")
        elif not {"integer", "number"} & types:
            record[name] = self.rng.randint(1000, 99999)
        else:
            record[name] = [current]
        return name

    def _duplicate(self, record: dict[str, Any]) -> str | None:
        if not self.primary_key or len(self._keys) < 2:
            return None
        # The last remembered key is this record's own; re-send one of the earlier ones.
        previous = self._keys[self.rng.randrange(len(self._keys) - 1)]
        for name, value in zip(self.primary_key, previous, strict=True):
            record[name] = value
        self._keys.pop()
        return self.primary_key[0]

    def _late(self, record: dict[str, Any]) -> str | None:
        """Every time of the record moved hours into the past (a backlog delivered late)."""
        if self.event_time is None or self.event_time not in record:
            return None
        delay = timedelta(hours=self.rng.uniform(2, 26))
        for name in self.times:
            value = record.get(name)
            if isinstance(value, str) and is_date_time(value):
                record[name] = rfc3339(datetime.fromisoformat(value) - delay)
        return self.event_time


# --- example contracts --------------------------------------------------------------------------


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in path.stem.split("-", 1)[0].split("."))


def example_contract_files(directory: Path, dataset_ids: Iterable[str] | None = None) -> list[Path]:
    """The example contracts (``datasets/<id>/<version>.yaml``), oldest version first per dataset."""
    wanted = set(dataset_ids) if dataset_ids is not None else None
    files: list[Path] = []
    for folder in sorted(p for p in (directory / "datasets").iterdir() if p.is_dir()):
        if wanted is None or folder.name in wanted:
            files.extend(sorted(folder.glob("*.yaml"), key=_version_key))
    return files
