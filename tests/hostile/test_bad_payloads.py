"""A corpus of hostile payloads for ingest's records and the catalog's contracts.

Each payload gets a precise 4xx problem+json (with its field path or line where there is one), or,
where the batch can be read, a 202 that rejects the bad records one by one; never a 5xx. Each is
answered within a time bound, and the memory it makes the process allocate (traced with
tracemalloc, the peak above what was allocated before the request) stays within a bound: a bomb
must not expand, a huge body must not be held twice.

tests/integration/test_ingest_bad_input.py already covers the common mistakes (malformed JSON,
NDJSON and CSV, a 10 MB string, depth-1000 nesting, a gzip bomb, ...); this corpus adds the
hostile ones it does not. The contract documents under corpus/ are files an attacker could send
as they are; the larger ones are generated here.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.ingest.settings import IngestSettings
from tests.factories import bus_arrival_record, ingest_contract
from tests.support.services import IngestPlatform, PublishedDataset, running_platform

CORPUS = Path(__file__).resolve().parent / "corpus"
PROBLEM = "application/problem+json"
MIB = 1 << 20
MAX_BODY = 4 * MIB
TIME_BOUND_S = 10.0
"""Generous on a shared 2-core machine: each case takes well under a second alone."""


@dataclass
class World:
    platform: IngestPlatform
    active: PublishedDataset


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("hostile-payloads")
    if request.param == "sqlite":
        database_url = f"sqlite:///{directory / 'citybase.db'}"
        yield from _world(directory, database_url)
    else:
        from tests.support.postgres import postgres_schema

        schema, engine, database_url = postgres_schema(str(request.getfixturevalue("postgres_url")))
        try:
            yield from _world(directory, database_url)
        finally:
            import sqlalchemy as sa

            with engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()


def _world(directory: Path, database_url: str) -> Iterator[World]:
    settings = IngestSettings(max_body_bytes=MAX_BODY, max_records_per_batch=1000, raw_enabled=False)
    with running_platform(
        directory, database_url=database_url, bus_url=None, ingest_settings=settings, bus_kind="embedded"
    ) as platform:
        platform.catalog.department("dept-hostile", ["transport"])
        yield World(platform, platform.dataset())


@dataclass(frozen=True)
class Measured:
    status: int
    content_type: str
    body: dict[str, Any]
    elapsed_s: float
    peak_bytes: int


def _measure(call: Callable[[], Any]) -> Measured:
    """One request, timed, with the peak of what it allocated traced."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        response = call()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    content_type = response.headers.get("content-type", "")
    body = response.json() if "json" in content_type else {}
    measured = Measured(response.status_code, content_type, body, elapsed, peak - before)
    print(f"{measured.status} in {elapsed * 1000:.0f} ms, {measured.peak_bytes / MIB:.1f} MiB at peak")
    return measured


# --- ingest -------------------------------------------------------------------------------------


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9)


def _bomb(size: int, prefix: bytes = b"") -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return squeeze.compress(prefix) + squeeze.compress(b" " * size) + squeeze.flush()


def _records(n: int = 3, **overrides: Any) -> bytes:
    return json.dumps([bus_arrival_record(**overrides) for _ in range(n)], ensure_ascii=False).encode()


def _ndjson(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


GOOD_LINE = json.dumps(bus_arrival_record()).encode()
CSV_HEADER = b"arrival_id,stop_id,route_id,vehicle_id,arrived_at,delay_s,occupancy"
INJECTIONS = [
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    '\t=HYPERLINK("http://x.example")',
    '=IMPORTXML("http://x.example")',
]
"""Formulas a spreadsheet would run, each within vehicle_id's 32 characters."""


LEAKS = re.compile(r"Traceback|File \"|sys\.|site-packages|/work/|SELECT |INSERT ", re.IGNORECASE)
"""What an error body must never show: a stack, the interpreter's internals, a path, SQL."""


@dataclass(frozen=True)
class IngestCase:
    body: bytes
    status: int
    problem: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    accepted: int | None = None
    rejected_paths: tuple[str, ...] = ()
    line: int | None = None
    memory_bound: int = 48 * MIB


INGEST: dict[str, Callable[[], IngestCase]] = {
    "JSON truncated mid-record": lambda: IngestCase(_records(5)[:-37], 400, "malformed-body", line=1),
    "JSON truncated mid-escape": lambda: IngestCase(b'[{"stop_id": "S\\u00', 400, "malformed-body", line=1),
    "a body over the limit": lambda: IngestCase(
        b"[" + b" " * (MAX_BODY + 1) + b"]", 413, "payload-too-large", memory_bound=24 * MIB
    ),
    "a body over the limit, as NDJSON": lambda: IngestCase(
        GOOD_LINE + b"\n" + b"x" * (MAX_BODY + 1), 413, "payload-too-large", "application/x-ndjson"
    ),
    "depth-100000 nesting": lambda: IngestCase(
        b"[" + json.dumps(bus_arrival_record()).encode() + b"," + b"[" * 100_000 + b"]" * 100_000 + b"]",
        202,
        accepted=1,
        rejected_paths=("",),
    ),
    "depth-100000 nesting, unclosed": lambda: IngestCase(b"[" * 100_000, 400, "malformed-body"),
    "an overlong UTF-8 encoding": lambda: IngestCase(b'[{"stop_id": "\xc0\xaf"}]', 400, "invalid-utf8"),
    "an encoded UTF-16 surrogate": lambda: IngestCase(b'[{"stop_id": "\xed\xa0\x80"}]', 400, "invalid-utf8"),
    "invalid UTF-8 in NDJSON": lambda: IngestCase(
        _ndjson(GOOD_LINE, b'{"stop_id": "\xff"}'), 400, "invalid-utf8", "application/x-ndjson"
    ),
    "invalid UTF-8 in CSV": lambda: IngestCase(
        CSV_HEADER + b"\nx,S\xfe,71,v,2026-11-24T08:00:00Z,1,FULL\n", 400, "invalid-utf8", "text/csv"
    ),
    "a UTF-16 body": lambda: IngestCase(_records(1).decode().encode("utf-16"), 400, "invalid-utf8"),
    "a lone surrogate escape": lambda: IngestCase(
        _records(1, vehicle_id="\\ud800").replace(b"\\\\ud800", b"\\ud800"),
        202,
        accepted=0,
        rejected_paths=("/vehicle_id",),
    ),
    "a 5000-digit integer": lambda: IngestCase(
        _records(1).replace(b'"delay_s": 42', b'"delay_s": ' + b"9" * 5000), 400, "malformed-body", line=1
    ),
    "an infinite number": lambda: IngestCase(
        _records(1).replace(b'"delay_s": 42', b'"delay_s": 1e999'),
        202,
        accepted=0,
        rejected_paths=("/delay_s",),
    ),
    "NaN": lambda: IngestCase(
        _records(1).replace(b'"delay_s": 42', b'"delay_s": NaN'), 400, "malformed-body"
    ),
    "records that are not objects": lambda: IngestCase(
        b'[1, "x", null, true, [], ' + json.dumps(bus_arrival_record()).encode() + b"]",
        202,
        accepted=1,
        rejected_paths=("", "", "", "", ""),
    ),
    "an operator object in a string field": lambda: IngestCase(
        _records(1, stop_id={"$gt": ""}), 202, accepted=0, rejected_paths=("/stop_id",)
    ),
    "a string where a number is, and a number where a string is": lambda: IngestCase(
        b"[" + _records(1, delay_s="42")[1:-1] + b"," + _records(1, route_id=71)[1:-1] + b"]",
        202,
        accepted=0,
        rejected_paths=("/delay_s", "/route_id"),
    ),
    "__proto__ and constructor keys": lambda: IngestCase(
        _records(1, __proto__={"admin": True}, constructor={"prototype": {}}),
        202,
        accepted=0,
        rejected_paths=("/__proto__", "/constructor"),
    ),
    "NDJSON with binary garbage lines": lambda: IngestCase(
        _ndjson(GOOD_LINE, b"\x1b[31m\x07\x08", GOOD_LINE),
        400,
        "malformed-body",
        "application/x-ndjson",
        line=2,
    ),
    "NDJSON with a lone bracket": lambda: IngestCase(
        _ndjson(GOOD_LINE, b"]"), 400, "malformed-body", "application/x-ndjson", line=2
    ),
    "NDJSON of arrays and scalars": lambda: IngestCase(
        _ndjson(GOOD_LINE, b"[1,2]", b"42", b'"text"'),
        202,
        content_type="application/x-ndjson",
        accepted=1,
        rejected_paths=("", "", ""),
    ),
    "a gzip bomb in NDJSON": lambda: IngestCase(
        _bomb(256 * MIB, GOOD_LINE + b"\n"),
        413,
        "payload-too-large",
        "application/x-ndjson",
        {"Content-Encoding": "gzip"},
    ),
    "gzip inside gzip": lambda: IngestCase(
        _gzip(_gzip(_records(1))), 415, "unsupported-media-type", headers={"Content-Encoding": "gzip, gzip"}
    ),
    "a gzip body sent as identity": lambda: IngestCase(_gzip(_records(1)), 400, "invalid-utf8"),
    "deflate": lambda: IngestCase(
        zlib.compress(_records(1)), 415, "unsupported-media-type", headers={"Content-Encoding": "deflate"}
    ),
    "multipart form data": lambda: IngestCase(
        b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\n[]\r\n--x--\r\n',
        415,
        "unsupported-media-type",
        "multipart/form-data; boundary=x",
    ),
    "XML": lambda: IngestCase(b"<records/>", 415, "unsupported-media-type", "application/xml"),
    "text/plain": lambda: IngestCase(_records(1), 415, "unsupported-media-type", "text/plain"),
    "no content type": lambda: IngestCase(_records(1), 415, "unsupported-media-type", ""),
    "a UTF-16 charset": lambda: IngestCase(
        _records(1), 415, "unsupported-media-type", "application/json; charset=utf-16"
    ),
    "a media type with a NUL": lambda: IngestCase(
        _records(1), 415, "unsupported-media-type", "application/json\x00"
    ),
}


def _post_records(world: World, case: IngestCase) -> Any:
    headers = {"Authorization": f"Bearer {world.active.key}", **case.headers}
    if case.content_type:
        headers["Content-Type"] = case.content_type
    return world.platform.client.post(
        f"/v1/datasets/{world.active.id}/records", content=case.body, headers=headers
    )


@pytest.mark.parametrize("name", list(INGEST))
def test_hostile_records_are_refused_precisely_in_bounded_time_and_memory(world: World, name: str) -> None:
    case = INGEST[name]()
    measured = _measure(lambda: _post_records(world, case))
    assert measured.status == case.status, f"{name}: {measured.status} {measured.body}"
    assert measured.elapsed_s < TIME_BOUND_S, f"{name} took {measured.elapsed_s:.1f} s"
    assert measured.peak_bytes < case.memory_bound, f"{name} allocated {measured.peak_bytes / MIB:.1f} MiB"
    if case.problem is not None:
        assert measured.content_type == PROBLEM
        assert measured.body["type"] == f"https://citybase.dev/problems/{case.problem}"
        assert measured.body["status"] == case.status
        assert measured.body.get("detail")
        if case.line is not None:
            assert measured.body["line"] == case.line
        assert not LEAKS.search(measured.body["detail"]), measured.body["detail"]
    else:
        assert measured.body["accepted"] == case.accepted
        paths = tuple(error["path"] for error in measured.body["errors"])
        assert paths == case.rejected_paths, measured.body["errors"]
        assert all(error["rule"] and error["message"] for error in measured.body["errors"])


@pytest.mark.parametrize("value", INJECTIONS)
def test_spreadsheet_formulas_are_data_kept_verbatim(world: World, value: str) -> None:
    """A formula in a string field is a string like any other: accepted as sent, published as sent,
    never evaluated, and the field's own rules still apply."""
    record = bus_arrival_record(vehicle_id=value)
    answer = _post_records(world, IngestCase(json.dumps([record]).encode(), 202))
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1, answer.json()
    topic = f"ds.{world.active.id}"
    published = [
        json.loads(m.value)
        for m in world.platform.read(topic, 1, settle_s=0.0)
        if m.value and record["arrival_id"].encode() in m.value
    ]
    assert published, "the record was not published"
    assert published[-1]["vehicle_id"] == value


# --- contracts ----------------------------------------------------------------------------------


def _laughs(levels: int = 9, fan_out: int = 10) -> bytes:
    lines = ['lol0: &lol0 "lol"']
    for level in range(1, levels + 1):
        refs = ", ".join(f"*lol{level - 1}" for _ in range(fan_out))
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return (
        "apiVersion: v3.0.2\nkind: DataContract\nid: transport.laughs\nversion: 1.0.0\nstatus: active\n"
        + "\n".join(lines)
        + "\n"
    ).encode()


@dataclass(frozen=True)
class ContractCase:
    body: bytes
    status: int
    problem: str
    content_type: str = "application/yaml"
    path: str | None = None
    memory_bound: int = 32 * MIB


def _corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def _valid_contract(dataset_id: str = "transport.hostile-contract") -> str:
    return ingest_contract(dataset_id, "dept-hostile")


CONTRACTS: dict[str, Callable[[], ContractCase]] = {
    "billion laughs": lambda: ContractCase(_laughs(), 422, "contract-invalid"),
    "billion laughs, from the corpus": lambda: ContractCase(
        _corpus("billion-laughs.yaml"), 422, "contract-invalid"
    ),
    "a merge-key alias": lambda: ContractCase(_corpus("merge-key.yaml"), 422, "contract-invalid"),
    "a 20 MiB document": lambda: ContractCase(
        b"apiVersion: v3.0.2\ndescription: " + b"x" * (20 * MIB) + b"\n", 413, "contract-too-large"
    ),
    "depth-100000 flow nesting": lambda: ContractCase(
        b"a: " + b"[" * 100_000 + b"]" * 100_000, 422, "contract-invalid"
    ),
    "depth-1000 block nesting": lambda: ContractCase(
        "".join(f"{' ' * i}k{i}:\n" for i in range(1000)).encode() + b" " * 1000 + b"v: 1\n",
        422,
        "contract-invalid",
    ),
    "Latin-1": lambda: ContractCase(
        _valid_contract().replace("Bus", "Büs").encode("latin-1"), 422, "contract-invalid"
    ),
    "UTF-16": lambda: ContractCase(_valid_contract().encode("utf-16"), 422, "contract-invalid"),
    "a NUL escape in a value": lambda: ContractCase(
        _valid_contract()
        .replace("version: 1.0.0", 'version: 1.0.0\ndescription: "bus\\0arrivals"', 1)
        .encode(),
        422,
        "contract-invalid",
        path="/description",
    ),
    "a raw NUL byte": lambda: ContractCase(_valid_contract().encode() + b"\x00\n", 422, "contract-invalid"),
    "duplicated keys": lambda: ContractCase(
        _corpus("duplicate-keys.yaml"), 422, "contract-invalid", path="/version"
    ),
    "duplicated keys in JSON": lambda: ContractCase(
        b'{"apiVersion": "v3.0.2", "kind": "DataContract", "kind": "Other"}',
        422,
        "contract-invalid",
        "application/json",
        path="/kind",
    ),
    "a Python object tag": lambda: ContractCase(_corpus("python-tag.yaml"), 422, "contract-invalid"),
    "two documents": lambda: ContractCase(
        _valid_contract().encode() + b"---\n" + _valid_contract().encode(), 422, "contract-invalid"
    ),
    "a YAML list": lambda: ContractCase(b"- a\n- b\n", 422, "contract-invalid"),
    "JSON with a YAML content type that is not a contract": lambda: ContractCase(
        b'{"apiVersion": "v3.0.2"}', 422, "contract-invalid"
    ),
    "an empty body": lambda: ContractCase(b"", 422, "contract-invalid"),
}


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_hostile_contracts_are_refused_precisely_in_bounded_time_and_memory(world: World, name: str) -> None:
    case = CONTRACTS[name]()
    catalog = world.platform.catalog
    measured = _measure(
        lambda: catalog.call(
            "POST", "/v1/contracts", content=case.body, headers={"Content-Type": case.content_type}
        )
    )
    assert measured.status == case.status, f"{name}: {measured.status} {measured.body}"
    assert measured.elapsed_s < TIME_BOUND_S, f"{name} took {measured.elapsed_s:.1f} s"
    assert measured.peak_bytes < case.memory_bound, f"{name} allocated {measured.peak_bytes / MIB:.1f} MiB"
    assert measured.content_type == PROBLEM
    assert measured.body["type"] == f"https://citybase.dev/problems/{case.problem}", measured.body
    assert measured.body.get("detail")
    if case.path is not None:
        assert case.path in [error["path"] for error in measured.body.get("errors") or []], measured.body


def test_json_instead_of_yaml_is_the_same_contract(world: World) -> None:
    """JSON is YAML 1.2: a contract sent as JSON under a YAML media type is read as what it is."""
    document = yaml.safe_load(_valid_contract(f"transport.as-json-{uuid.uuid4().hex[:8]}"))
    response = world.platform.catalog.call(
        "POST", "/v1/contracts", content=json.dumps(document), headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["dataset_id"] == document["id"]
