"""Flavours: realistic Shanghai values by field name, for each example dataset and for any dataset.

A flavour's value is used only if it fits the field's schema (:func:`citybase.demo.schema_values.fits`),
so a contract that narrows a field never makes the demo produce invalid records.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
"""China Standard Time; the example datasets write their times with the +08:00 offset."""


def shanghai_now() -> datetime:
    return datetime.now(SHANGHAI)


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
