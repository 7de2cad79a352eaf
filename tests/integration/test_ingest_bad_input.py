"""Bad input is a precise 4xx problem+json, never a 500; in a batch that can be read, the valid
records are still accepted and each bad one is rejected with its own reason."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.ingest.settings import IngestSettings
from tests.factories import bus_arrival_record
from tests.support.services import IngestPlatform, PublishedDataset, running_platform

CSV_HEADER = "arrival_id,stop_id,route_id,vehicle_id,arrived_at,delay_s,occupancy"


def _csv_row(**overrides: Any) -> str:
    record = bus_arrival_record(**overrides)
    return ",".join("" if record[name] is None else str(record[name]) for name in CSV_HEADER.split(","))


@dataclass
class World:
    platform: IngestPlatform
    active: PublishedDataset
    draft: str
    retired: str
    stranger_key: str
    published: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("ingest-bad-input")
    settings = IngestSettings(max_records_per_batch=100, raw_enabled=False)
    with running_platform(
        directory,
        database_url=f"sqlite:///{directory / 'citybase.db'}",
        bus_url=None,
        ingest_settings=settings,
        bus_kind="embedded",
    ) as platform:
        active = platform.dataset()
        draft = platform.dataset("draft", status="draft")
        retired = platform.dataset("retired", status="retired")
        stranger = platform.publisher_key("health-office", ["health"])
        yield World(platform, active, draft.id, retired.id, stranger)


@dataclass(frozen=True)
class Case:
    body: bytes | str | list[Any]
    status: int
    problem: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    accepted: int | None = None
    rules: tuple[str, ...] = ()
    target: str = "active"
    key: str = "owner"


def _bomb() -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return squeeze.compress(b"[" + b" " * (64 << 20)) + squeeze.flush()


DEEP = "[" * 1000 + "]" * 1000

CASES: dict[str, Callable[[], Case]] = {
    "malformed JSON": lambda: Case('[{"stop_id": "S0042"},\n {"stop_id": }]', 400, "malformed-body"),
    "JSON that is not an array": lambda: Case(json.dumps(bus_arrival_record()), 400, "malformed-body"),
    "malformed NDJSON": lambda: Case(
        json.dumps(bus_arrival_record()) + "\n{oops\n", 400, "malformed-body", "application/x-ndjson"
    ),
    "malformed CSV": lambda: Case(f'{CSV_HEADER}\n"{_csv_row()}\n', 400, "malformed-body", "text/csv"),
    "CSV missing a required column": lambda: Case(
        "arrival_id,route_id,vehicle_id,arrived_at\nx,71,v,2026-11-24T08:00:00Z\n",
        422,
        "csv-header-mismatch",
        "text/csv",
    ),
    "CSV with an extra column": lambda: Case(
        f"{CSV_HEADER},colour\n{_csv_row()},red\n", 422, "csv-header-mismatch", "text/csv"
    ),
    "CSV rows with missing or extra cells": lambda: Case(
        f"{CSV_HEADER}\n{_csv_row()}\n{_csv_row()},extra\nS0042,71\n",
        202,
        content_type="text/csv",
        accepted=1,
        rules=("csvColumns", "csvColumns"),
    ),
    "CSV cells of the wrong type": lambda: Case(
        f"{CSV_HEADER}\n{_csv_row()}\n{_csv_row(delay_s='soon')}\n",
        202,
        content_type="text/csv",
        accepted=1,
        rules=("type",),
    ),
    "wrong types": lambda: Case(
        [bus_arrival_record(), bus_arrival_record(delay_s="1"), bus_arrival_record(stop_id=42)],
        202,
        accepted=1,
        rules=("type", "type"),
    ),
    "a 10 MB string": lambda: Case(
        [bus_arrival_record(), bus_arrival_record(vehicle_id="x" * 10_000_000), bus_arrival_record()],
        202,
        accepted=2,
        rules=("maxRecordBytes",),
    ),
    "depth-1000 nesting": lambda: Case(
        f'[{json.dumps(bus_arrival_record())}, {{"nested": {DEEP}}}]', 202, accepted=1, rules=("maxDepth",)
    ),
    "invalid UTF-8": lambda: Case(b'[{"stop_id": "S\xff\xfe"}]', 400, "invalid-utf8"),
    "empty body": lambda: Case(b"", 400, "empty-body"),
    "an empty array": lambda: Case("[]", 400, "empty-body"),
    "unknown dataset": lambda: Case(
        [bus_arrival_record()], 404, "dataset-not-found", target="transport.no-such"
    ),
    "draft dataset": lambda: Case([bus_arrival_record()], 409, "dataset-not-writable", target="draft"),
    "retired dataset": lambda: Case([bus_arrival_record()], 409, "dataset-not-writable", target="retired"),
    "publisher of another department": lambda: Case(
        [bus_arrival_record()], 403, "not-dataset-publisher", key="stranger"
    ),
    "no API key": lambda: Case([bus_arrival_record()], 401, "unauthenticated", key="none"),
    "wrong content type": lambda: Case(
        "stop_id=S0042", 415, "unsupported-media-type", "application/x-www-form-urlencoded"
    ),
    "a charset other than UTF-8": lambda: Case(
        "[]", 415, "unsupported-media-type", "application/json; charset=gbk"
    ),
    "an unsupported content encoding": lambda: Case(
        "[]", 415, "unsupported-media-type", headers={"Content-Encoding": "br"}
    ),
    "a zip bomb": lambda: Case(_bomb(), 413, "payload-too-large", headers={"Content-Encoding": "gzip"}),
    "truncated gzip": lambda: Case(
        gzip.compress(b"[" + b"{}," * 1000 + b"{}]")[:-20],
        400,
        "malformed-body",
        headers={"Content-Encoding": "gzip"},
    ),
    "too many records": lambda: Case([bus_arrival_record() for _ in range(101)], 413, "too-many-records"),
    "another contract version in the header": lambda: Case(
        [bus_arrival_record()],
        409,
        "contract-version-mismatch",
        headers={"CityBase-Contract-Version": "0.9.0"},
    ),
    "an idempotency key that is not visible ASCII": lambda: Case(
        [bus_arrival_record()], 400, "invalid-header", headers={"Idempotency-Key": "two words"}
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_precise_4xx_and_good_records_still_go_through(world: World, name: str) -> None:
    case = CASES[name]()
    target = {"active": world.active.id, "draft": world.draft, "retired": world.retired}.get(
        case.target, case.target
    )
    key = {"owner": world.active.key, "stranger": world.stranger_key, "none": ""}[case.key]
    response = world.platform.post(
        target, key, case.body, content_type=case.content_type, headers=case.headers
    )
    assert response.status_code == case.status, response.text[:500]
    if case.problem is not None:
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"] == f"https://citybase.dev/problems/{case.problem}"
        assert problem["status"] == case.status
        assert problem.get("detail")
        if case.problem == "malformed-body" and case.headers.get("Content-Encoding") != "gzip":
            assert problem["line"] >= 1
        if case.problem == "csv-header-mismatch":
            assert problem["errors"] and problem["errors"][0]["path"].startswith("/header")
    else:
        answer = response.json()
        assert answer["accepted"] == case.accepted
        assert tuple(error["rule"] for error in answer["errors"]) == case.rules
        assert answer["rejected"] == len(case.rules)
        assert all(error["message"] for error in answer["errors"])


def test_a_rejection_points_into_the_record(world: World) -> None:
    records = [
        bus_arrival_record(delay_s=99_999),
        bus_arrival_record(arrived_at="yesterday"),
        {"stop_id": "S1"},
    ]
    answer = world.platform.post(world.active.id, world.active.key, records).json()
    errors = [(e["index"], e["path"], e["rule"]) for e in answer["errors"]]
    assert (0, "/delay_s", "maximum") in errors
    assert (1, "/arrived_at", "format") in errors
    assert (2, "/arrival_id", "required") in errors
