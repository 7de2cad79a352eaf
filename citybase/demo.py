"""Synthetic records for the example datasets, valid by default, with faults at chosen rates.

:class:`RecordGenerator` is driven by a dataset's record schema (the JSON Schema the catalog
derives from its contract: ``GET /catalog/v1/datasets/{id}/contract-versions/{v}`` →
``record_schema``), so a new contract version, or a new dataset, keeps working: every field gets a
value of its type, format, enum, bounds, length and pattern. Field *flavours* make the values
look like Shanghai: a flavour is a small function named after a field (``district``,
``hospital_id``, ``licence_number``, ``*_phone``), looked up first for the dataset and then for any
dataset. A flavour's value is used only if it satisfies the field's schema, otherwise the schema
decides; so a contract that narrows a field never makes the demo produce invalid records.

Faults turn a valid record into a realistic bad one, at most one per record, each kind at its own
rate (the rates add up to the share of faulty records):

- ``null``: a required field left out (ingest rejects it: rule ``required``);
- ``out-of-range``: a number beyond its bounds, or a text beyond its length (``maximum``, ...);
- ``bad-enum``: a value outside the enumeration, e.g. ``Pass`` for ``pass`` (``enum``);
- ``schema-break``: a value of the wrong type, or a field the contract does not have (``type``,
  ``additionalProperties``);
- ``duplicate``: the primary key of an earlier record again (valid: quality sees it as uniqueness);
- ``late``: every time of the record hours in the past (valid: quality sees it as timeliness).

Everything random comes from the ``random.Random`` handed in and every time from the ``clock``,
so a seed and a fixed clock give the same records. :func:`stream` sends generated batches at a
rate through any ``publish`` function (the :class:`citybase.client.Publisher` in ``citybase demo``).
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

from services.ingest.validation import json_type

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
"""China Standard Time; the example datasets write their times with the +08:00 offset."""


def shanghai_now() -> datetime:
    return datetime.now(SHANGHAI)


# --- faults ---------------------------------------------------------------------------------


class Fault(StrEnum):
    null = "null"
    out_of_range = "out-of-range"
    bad_enum = "bad-enum"
    schema_break = "schema-break"
    duplicate = "duplicate"
    late = "late"


REJECTED_FAULTS = frozenset({Fault.null, Fault.out_of_range, Fault.bad_enum, Fault.schema_break})
"""Faults that break the contract, so ingest sends the record to the dead-letter topic."""


@dataclass(frozen=True)
class FaultRates:
    """The share of records (0 to 1) that carry each fault; together at most 1."""

    null: float = 0.0
    out_of_range: float = 0.0
    bad_enum: float = 0.0
    schema_break: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0

    def __post_init__(self) -> None:
        for kind, rate in self.items():
            if not 0.0 <= rate <= 1.0 or math.isnan(rate):
                raise ValueError(f"the {kind} rate must be between 0 and 1, not {rate}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"the fault rates add up to {self.total:g}; at most 1 (one fault per record)")

    def items(self) -> list[tuple[Fault, float]]:
        return [
            (Fault.null, self.null),
            (Fault.out_of_range, self.out_of_range),
            (Fault.bad_enum, self.bad_enum),
            (Fault.schema_break, self.schema_break),
            (Fault.duplicate, self.duplicate),
            (Fault.late, self.late),
        ]

    @property
    def total(self) -> float:
        return sum(rate for _, rate in self.items())

    @property
    def rejected_share(self) -> float:
        """The share of records ingest is expected to reject."""
        return sum(rate for kind, rate in self.items() if kind in REJECTED_FAULTS)


# --- flavours: realistic values by field name --------------------------------------------------

ABSENT: Any = object()
"""What a flavour returns to leave an optional field out of the record."""


@dataclass
class FieldContext:
    """What a flavour may use: the field, the record so far, randomness and the time."""

    name: str
    schema: Mapping[str, Any]
    rng: random.Random
    now: datetime
    record: dict[str, Any]
    sequence: int
    """Running number of records of this generator (for case numbers)."""
    start: int = 0
    """A random number drawn once per generator: where its case numbers start."""


ValueFactory = Callable[[FieldContext], Any]


@dataclass(frozen=True)
class Flavour:
    """Hints for one dataset: value factories by field name, and the field that holds event time."""

    fields: Mapping[str, ValueFactory] = field(default_factory=dict)
    event_time: str | None = None
    """None: the first required date-time field."""


def weighted(pairs: Sequence[tuple[Any, float]]) -> ValueFactory:
    values = [value for value, _ in pairs]
    weights = [weight for _, weight in pairs]
    return lambda ctx: ctx.rng.choices(values, weights)[0]


def pool(values: Sequence[Any]) -> ValueFactory:
    return lambda ctx: ctx.rng.choice(values)


def maybe_null(share: float, factory: ValueFactory) -> ValueFactory:
    return lambda ctx: None if ctx.rng.random() < share else factory(ctx)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def just_now(ctx: FieldContext) -> str:
    """A moment of the last 20 seconds: records arrive shortly after what they describe."""
    return rfc3339(ctx.now - timedelta(seconds=ctx.rng.uniform(0, 20)))


def case_number(prefix: str, digits: int, *, by_day: bool) -> ValueFactory:
    """``<prefix>-<yyyymmdd or yyyy>-<sequence>``, e.g. ``OV-20261124-000042``."""

    def make(ctx: FieldContext) -> str:
        period = ctx.now.strftime("%Y%m%d") if by_day else ctx.now.strftime("%Y")
        # Unique until the sequence wraps (10**digits records of one period).
        return f"{prefix}-{period}-{(ctx.start + ctx.sequence) % 10**digits:0{digits}d}"

    return make


MOBILE_PREFIXES = ("133", "135", "136", "137", "138", "139", "150", "151", "158", "177", "186", "187", "189")


def mobile_phone(ctx: FieldContext) -> str:
    return ctx.rng.choice(MOBILE_PREFIXES) + f"{ctx.rng.randrange(10**8):08d}"


DISTRICTS: dict[str, tuple[str, float, float, float]] = {
    # name: (administrative division code, latitude, longitude of the centre, weight ~ population)
    "Huangpu": ("310101", 31.2317, 121.4846, 1.0),
    "Xuhui": ("310104", 31.1885, 121.4365, 1.4),
    "Changning": ("310105", 31.2204, 121.4246, 0.9),
    "Jing'an": ("310106", 31.2286, 121.4480, 1.3),
    "Putuo": ("310107", 31.2496, 121.3970, 1.6),
    "Hongkou": ("310109", 31.2646, 121.5053, 0.9),
    "Yangpu": ("310110", 31.2596, 121.5260, 1.6),
    "Minhang": ("310112", 31.1129, 121.3817, 3.3),
    "Baoshan": ("310113", 31.4053, 121.4896, 2.7),
    "Jiading": ("310114", 31.3747, 121.2655, 1.8),
    "Pudong": ("310115", 31.2214, 121.5447, 7.0),
    "Jinshan": ("310116", 30.7419, 121.3417, 0.8),
    "Songjiang": ("310117", 31.0322, 121.2277, 2.3),
    "Qingpu": ("310118", 31.1497, 121.1242, 1.6),
    "Fengxian": ("310120", 30.9180, 121.4740, 1.4),
    "Chongming": ("310151", 31.6230, 121.3975, 0.8),
}
# fmt: off
PUTUO_STREETS = (
    "Changshou Road", "Caojiadu", "Ganquan Road", "Shiquan Road", "Yichuan Road", "Wanli",
    "Changfeng Xincun", "Changzheng Town", "Taopu Town", "Zhenru Town",
)
CLINICS = (
    "cardiology", "respiratory", "gastroenterology", "endocrinology", "neurology", "orthopaedics",
    "paediatrics", "gynaecology", "ophthalmology", "dermatology", "ENT", "general-surgery",
    "fever-clinic", "traditional-chinese-medicine",
)
BUS_ROUTES = ("01", "14", "20", "26", "42", "49", "71", "113", "138", "144", "572", "783", "864", "911", "927")
BUSINESS_CATEGORIES = (
    "catering", "retail-food", "supermarket", "bakery", "school-canteen", "pharmacy", "cosmetics",
    "medical-devices",
)
PROJECTS = (
    "residential block", "office tower", "school extension", "community health centre",
    "metro station entrance", "riverside park pavilion", "elderly care home", "logistics warehouse",
)
# fmt: on
HOSPITALS = {
    "H31001": "Ruijin Hospital",
    "H31002": "Zhongshan Hospital",
    "H31003": "Huashan Hospital",
    "H31004": "Renji Hospital",
    "H31005": "Shanghai Sixth People's Hospital",
    "H31006": "Shanghai General Hospital",
    "H31007": "Xinhua Hospital",
    "H31008": "Shanghai Children's Medical Center",
    "H31009": "Changhai Hospital",
    "H31010": "Shanghai Tenth People's Hospital",
    "H31011": "Putuo District Central Hospital",
    "H31012": "Shuguang Hospital",
}

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_character(first17: str) -> str:
    """The 18th character of a unified social credit code (GB 32100-2015, modulo 31)."""
    total = sum(USCC_CHARS.index(char) * weight for char, weight in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def licence_number(ctx: FieldContext) -> str:
    """A unified social credit code of a Shanghai enterprise: 91 + division + organisation code."""
    division, *_ = DISTRICTS[ctx.record.get("district") or ctx.rng.choice(list(DISTRICTS))]
    organisation = "".join(ctx.rng.choice(USCC_CHARS) for _ in range(9))
    first17 = "91" + division + organisation
    return first17 + uscc_check_character(first17)


def district_weighted(ctx: FieldContext) -> str:
    names = list(DISTRICTS)
    return ctx.rng.choices(names, [DISTRICTS[name][3] for name in names])[0]


def _near_district(index: int, spread: float) -> ValueFactory:
    def make(ctx: FieldContext) -> float:
        _, latitude, longitude, _ = DISTRICTS.get(
            ctx.record.get("district") or "", ("", 31.2304, 121.4737, 1.0)
        )
        return round((latitude, longitude)[index] + ctx.rng.uniform(-spread, spread), 6)

    return make


def _bus_delay(ctx: FieldContext) -> int | None:
    if ctx.rng.random() < 0.01:
        return None
    return max(-600, min(2400, round(ctx.rng.gauss(90, 150))))


def _wait_minutes(ctx: FieldContext) -> int | None:
    if ctx.rng.random() < 0.06:
        return None
    return min(1440, round(ctx.rng.lognormvariate(math.log(25), 0.7)))


def _floor_area(ctx: FieldContext) -> float:
    return round(min(1_900_000.0, max(20.0, ctx.rng.lognormvariate(math.log(12_000), 1.0))), 1)


def _project_name(ctx: FieldContext) -> str:
    district = ctx.record.get("district") or "Pudong"
    return f"{district} {ctx.rng.choice(PROJECTS)}, phase {ctx.rng.randint(1, 4)}"


def _request_created(ctx: FieldContext) -> str:
    if ctx.record.get("status") in (None, "received"):
        return just_now(ctx)
    return rfc3339(ctx.now - timedelta(minutes=ctx.rng.uniform(2, 50)))


def _request_updated(ctx: FieldContext) -> str | None:
    if ctx.record.get("status") in (None, "received"):
        return None
    return just_now(ctx)


COMMON = Flavour(
    fields={
        "district": district_weighted,
        "street": pool(PUTUO_STREETS),
        "hospital_id": pool(list(HOSPITALS)),
        "clinic": pool(CLINICS),
        "licence_number": licence_number,
        "business_category": pool(BUSINESS_CATEGORIES),
        "route_id": pool(BUS_ROUTES),
    }
)
"""Flavours of any dataset, by field name; also every field ending in ``_phone`` is a mobile number."""

FLAVOURS: dict[str, Flavour] = {
    "transport.bus-arrivals": Flavour(
        event_time="arrived_at",
        fields={
            "stop_id": lambda ctx: f"S{ctx.rng.randrange(1, 2400):04d}",
            "vehicle_id": lambda ctx: f"沪{ctx.rng.choice('BD')}-{ctx.rng.randrange(10000, 99999)}",
            "arrived_at": just_now,
            "delay_s": _bus_delay,
            "occupancy": weighted(
                [
                    ("EMPTY", 5),
                    ("MANY_SEATS_AVAILABLE", 35),
                    ("FEW_SEATS_AVAILABLE", 30),
                    ("STANDING_ROOM_ONLY", 18),
                    ("CRUSHED_STANDING_ROOM_ONLY", 5),
                    ("FULL", 3),
                    ("NOT_ACCEPTING_PASSENGERS", 1),
                    (None, 3),
                ]
            ),
            "direction": weighted([(0, 49), (1, 49), (None, 2)]),
        },
    ),
    "health.outpatient-visits": Flavour(
        event_time="registered_at",
        fields={
            "visit_id": case_number("OV", 6, by_day=True),
            "patient_id": lambda ctx: f"SHYB{ctx.rng.randrange(10**10):010d}",
            "age_band": weighted(
                [("0-6", 8), ("7-17", 8), ("18-39", 25), ("40-59", 27), ("60-79", 24), ("80+", 8)]
            ),
            "wait_minutes": _wait_minutes,
            "registered_at": just_now,
            "channel": weighted(
                [("on-site", 30), ("online", 45), ("referral", 10), ("one-stop", 10), (None, 5)]
            ),
        },
    ),
    "market.inspections": Flavour(
        event_time="inspected_at",
        fields={
            "inspection_id": case_number("INSP", 6, by_day=False),
            "result": weighted(
                [
                    ("pass", 55),
                    ("pass-with-remarks", 25),
                    ("rectification-ordered", 12),
                    ("fail", 5),
                    ("suspended", 3),
                ]
            ),
            "inspected_at": just_now,
            "inspector_phone": maybe_null(0.02, mobile_phone),
        },
    ),
    "spatial.building-permits": Flavour(
        event_time="issued_at",
        fields={
            "permit_id": case_number("BP", 5, by_day=False),
            "latitude": _near_district(0, 0.03),
            "longitude": _near_district(1, 0.03),
            "floor_area_m2": _floor_area,
            "issued_at": just_now,
            "project_name": _project_name,
        },
    ),
    "community.service-requests": Flavour(
        event_time="created_at",
        fields={
            "request_id": case_number("SR", 5, by_day=True),
            "category": weighted(
                [
                    ("noise", 18),
                    ("sanitation", 16),
                    ("repairs", 22),
                    ("elder-care", 12),
                    ("parking", 14),
                    ("greenery", 6),
                    ("neighbour-dispute", 7),
                    ("other", 5),
                ]
            ),
            "status": weighted(
                [
                    ("received", 35),
                    ("assigned", 20),
                    ("in-progress", 20),
                    ("resolved", 15),
                    ("closed", 7),
                    ("reopened", 3),
                ]
            ),
            "resident_phone": maybe_null(0.10, mobile_phone),
            "created_at": _request_created,
            "updated_at": _request_updated,
            "triaged_by_ai": weighted([(True, 60), (False, 35), (None, 5)]),
        },
    ),
}
EXAMPLE_DATASETS = tuple(FLAVOURS)


# --- values from a JSON Schema ------------------------------------------------------------------


class PatternNotSupported(ValueError):
    """A ``pattern`` uses regular-expression syntax the sampler does not generate from."""


_CLASS_ESCAPES = {
    "d": "0123456789",
    "w": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
    "s": " ",
}
_PRINTABLE = [chr(code) for code in range(0x21, 0x7F)]
_Node = tuple[str, Any]


class _PatternParser:
    """A parser for the regular expressions of contracts: literals, classes, groups, alternation
    and quantifiers; anchors are dropped. Lookarounds and back-references are refused."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def parse(self) -> _Node:
        node = self._alternation()
        if self.at != len(self.text):
            raise PatternNotSupported(f"unexpected {self.text[self.at]!r} at {self.at} in {self.text!r}")
        return node

    def _peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def _alternation(self) -> _Node:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.at += 1
            branches.append(self._sequence())
        return ("alt", branches) if len(branches) > 1 else branches[0]

    def _sequence(self) -> _Node:
        items: list[_Node] = []
        while self._peek() not in ("", "|", ")"):
            atom = self._atom()
            if atom is not None:
                items.append(self._quantified(atom))
        return ("seq", items)

    def _atom(self) -> _Node | None:
        char = self.text[self.at]
        self.at += 1
        if char in "^$":
            return None
        if char == ".":
            return ("set", list(_CLASS_ESCAPES["w"][26:62]))  # capitals and digits
        if char == "[":
            return ("set", self._class())
        if char == "(":
            if self.text.startswith("?:", self.at):
                self.at += 2
            elif self.text.startswith("?P<", self.at):
                self.at = self.text.index(">", self.at) + 1
            elif self._peek() == "?":
                raise PatternNotSupported(f"lookarounds are not generated: {self.text!r}")
            inner = self._alternation()
            if self._peek() != ")":
                raise PatternNotSupported(f"unbalanced parenthesis in {self.text!r}")
            self.at += 1
            return inner
        if char == "\\":
            return self._escape()
        if char in "*+?{":
            raise PatternNotSupported(f"nothing to repeat at {self.at - 1} in {self.text!r}")
        return ("lit", char)

    def _escape(self) -> _Node | None:
        char = self.text[self.at]
        self.at += 1
        if char in "AZzbB":
            return None
        if char in _CLASS_ESCAPES:
            return ("set", list(_CLASS_ESCAPES[char]))
        if char in "DWS":
            excluded = _CLASS_ESCAPES[char.lower()]
            return ("set", [c for c in _PRINTABLE if c not in excluded])
        if char == "u":
            code, self.at = self.text[self.at : self.at + 4], self.at + 4
            return ("lit", chr(int(code, 16)))
        if char.isdigit():
            raise PatternNotSupported(f"back-references are not generated: {self.text!r}")
        return ("lit", {"n": "\n", "t": "\t"}.get(char, char))

    def _class(self) -> list[str]:
        negate = self._peek() == "^"
        if negate:
            self.at += 1
        members: list[str] = []
        first = True
        while True:
            if self.at >= len(self.text):
                raise PatternNotSupported(f"unterminated character class in {self.text!r}")
            char = self.text[self.at]
            if char == "]" and not first:
                self.at += 1
                break
            first = False
            self.at += 1
            if char == "\\":
                escaped = self.text[self.at]
                self.at += 1
                if escaped in _CLASS_ESCAPES:
                    members.extend(_CLASS_ESCAPES[escaped])
                    continue
                char = escaped
            if self._peek() == "-" and self.text[self.at + 1 : self.at + 2] not in ("]", ""):
                end = self.text[self.at + 1]
                if end == "\\":
                    end = self.text[self.at + 2]
                    self.at += 1
                self.at += 2
                members.extend(chr(code) for code in range(ord(char), ord(end) + 1))
            else:
                members.append(char)
        if negate:
            excluded = set(members)
            return [c for c in _PRINTABLE if c not in excluded]
        return sorted(set(members))

    def _quantified(self, atom: _Node) -> _Node:
        char = self._peek()
        low, high = 1, 1
        if char == "?":
            low, high = 0, 1
        elif char == "*":
            low, high = 0, 3
        elif char == "+":
            low, high = 1, 4
        elif char == "{" and re.match(r"\{\d*(,\d*)?\}", self.text[self.at :]):
            close = self.text.index("}", self.at)
            low_text, comma, high_text = self.text[self.at + 1 : close].partition(",")
            low = int(low_text or 0)
            high = int(high_text) if high_text else (low + 3 if comma else low)
            self.at = close
        else:
            return atom
        self.at += 1
        if self._peek() == "?":  # lazy: the same strings
            self.at += 1
        return ("repeat", (atom, low, high))


def _render(node: _Node, rng: random.Random, out: list[str]) -> None:
    kind, value = node
    if kind == "lit":
        out.append(value)
    elif kind == "set":
        out.append(rng.choice(value))
    elif kind == "seq":
        for item in value:
            _render(item, rng, out)
    elif kind == "alt":
        _render(rng.choice(value), rng, out)
    else:
        atom, low, high = value
        for _ in range(rng.randint(low, high)):
            _render(atom, rng, out)


_PATTERNS: dict[str, _Node] = {}


def sample_pattern(pattern: str, rng: random.Random) -> str:
    """A string matching ``pattern`` (the subset of regular expressions contracts use)."""
    node = _PATTERNS.get(pattern)
    if node is None:
        node = _PATTERNS[pattern] = _PatternParser(pattern).parse()
    out: list[str] = []
    _render(node, rng, out)
    return "".join(out)


def json_types(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [str(t) for t in declared]
    if "enum" in schema:
        return sorted({json_type(v) for v in schema["enum"]})
    return ["string"]


def _is_date_time(value: str) -> bool:
    if "T" not in value.upper():
        return False
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return False
    return moment.tzinfo is not None


def _has_format(value: str, name: str) -> bool:
    if name == "date-time":
        return _is_date_time(value)
    if name == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return len(value) == 10
    if name == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            return False
        return len(value) == 36
    return True


def fits(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether ``value`` satisfies the field's own keywords (type, enum, bounds, length, pattern,
    format); nested objects and arrays are checked by type only."""
    kind = json_type(value)
    allowed = json_types(schema)
    if kind not in allowed and not (kind == "integer" and "number" in allowed):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return False
    if kind == "string":
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            return False
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return False
        if "format" in schema and not _has_format(value, schema["format"]):
            return False
    return True


_WORDS = ("north", "east", "river", "garden", "lane", "plaza", "bridge", "harbour", "park", "market")


class SchemaValues:
    """Values for any field from its JSON Schema alone."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def value(self, schema: Mapping[str, Any], ctx: FieldContext) -> Any:
        if "const" in schema:
            return schema["const"]
        enum = [v for v in schema.get("enum") or () if v is not None]
        if enum:
            return self.rng.choice(enum)
        types = [t for t in json_types(schema) if t != "null"] or ["null"]
        kind = types[0]
        if kind == "string":
            return self.string(schema, ctx)
        if kind in ("integer", "number"):
            return self.number(schema, integer=kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "object":
            return self.object(schema, ctx)
        if kind == "array":
            items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            low = int(schema.get("minItems", 0))
            high = max(low, min(int(schema.get("maxItems", low + 3)), low + 3))
            return [self.value(items or {}, ctx) for _ in range(self.rng.randint(low, high))]
        return None

    def object(self, schema: Mapping[str, Any], ctx: FieldContext) -> dict[str, Any]:
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, sub in (schema.get("properties") or {}).items():
            if name in required or self.rng.random() < 0.9:
                out[name] = self.value(sub if isinstance(sub, dict) else {}, ctx)
        return out

    def string(self, schema: Mapping[str, Any], ctx: FieldContext) -> str:
        rng = self.rng
        fmt = schema.get("format")
        if fmt == "date-time":
            return just_now(ctx)
        if fmt == "date":
            return ctx.now.date().isoformat()
        if fmt == "time":
            return ctx.now.timetz().isoformat(timespec="seconds")
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(low, 24)))
        if "pattern" in schema:
            for _ in range(50):
                text = sample_pattern(schema["pattern"], rng)
                if low <= len(text) <= high:
                    return text
            raise PatternNotSupported(
                f"no value of {low} to {high} characters found for {schema['pattern']!r}"
            )
        if fmt == "email":
            return f"{rng.choice(_WORDS)}.{rng.randrange(1000)}@example.gov.cn"[:high]
        text = " ".join(rng.choice(_WORDS) for _ in range(3)).capitalize()
        if len(text) < low:
            text += "x" * (low - len(text))
        return text[: max(high, low)]

    def number(self, schema: Mapping[str, Any], *, integer: bool) -> int | float:
        low, high = numeric_bounds(schema)
        low = 0.0 if low is None else low
        high = low + 1000.0 if high is None else high
        if low > high:
            low = high - 1000.0
        if integer:
            return self.rng.randint(math.ceil(low), math.floor(high))
        value = round(self.rng.uniform(low, high), 4)
        return min(max(value, low), high)


def numeric_bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The inclusive range a number may take (an exclusive bound moved inwards a little)."""
    low = schema.get("minimum")
    high = schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = max(low if low is not None else -math.inf, schema["exclusiveMinimum"] + 0.01)
    if "exclusiveMaximum" in schema:
        high = min(high if high is not None else math.inf, schema["exclusiveMaximum"] - 0.01)
    return low, high


# --- the generator ------------------------------------------------------------------------------


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
            if isinstance(value, str) and _is_date_time(value):
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


# --- streaming at a rate ------------------------------------------------------------------------


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
