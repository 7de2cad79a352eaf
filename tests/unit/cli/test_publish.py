"""The Publisher client and ``citybase publish``, against a scripted ingest (httpx.MockTransport)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from citybase import publish_cli
from citybase.cli import app
from citybase.client import BatchResult, FileResult, Publisher, PublishError, retry_after_s

INGEST = "http://ingest.test/ingest"
DATASET = "transport.bus-arrivals"
MAX_DELAY_S = 10_800
runner = CliRunner()


def problem(status: int, slug: str, detail: str, **extra: Any) -> httpx.Response:
    body = {
        "type": f"https://citybase.dev/problems/{slug}",
        "title": slug,
        "status": status,
        "detail": detail,
    }
    return httpx.Response(
        status, json={**body, **extra}, headers={"Content-Type": "application/problem+json"}
    )


def records_of(request: httpx.Request) -> list[dict[str, Any]]:
    """The batch as ingest reads it, CSV cells typed the way the contract would type them."""
    content_type = request.headers["Content-Type"]
    text = request.content.decode()
    if content_type.startswith("application/json"):
        return list(json.loads(text))
    if content_type.startswith("application/x-ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = list(csv.DictReader(io.StringIO(text)))
    return [
        {k: int(v) if k == "delay_s" and v.lstrip("-").isdigit() else v for k, v in r.items()} for r in rows
    ]


class FakeIngest:
    """Answers like ingest: 202 with every record accepted or rejected (``delay_s`` at most 3 h);
    ``script`` answers the first requests differently (429, 503, a dropped connection)."""

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            return step
        if request.headers.get("Authorization") != "Bearer key-1":
            return problem(401, "unauthenticated", "the API key is missing, unknown or revoked")
        if not request.url.path.endswith(f"/v1/datasets/{DATASET}/records"):
            return problem(404, "dataset-not-found", "no such dataset")
        errors = []
        records = records_of(request)
        for index, record in enumerate(records):
            if not isinstance(record.get("delay_s"), int) or record["delay_s"] > MAX_DELAY_S:
                errors.append(
                    {
                        "index": index,
                        "path": "/delay_s",
                        "rule": "maximum",
                        "message": f"delay_s must be at most {MAX_DELAY_S}",
                    }
                )
        return httpx.Response(
            202,
            json={
                "dataset": DATASET,
                "contract_version": "1.1.0",
                "accepted": len(records) - len(errors),
                "rejected": len(errors),
                "duplicates": 0,
                "event_ids": [f"e{i}" for i in range(len(records) - len(errors))],
                "errors": errors,
                "errors_truncated": False,
            },
        )


def publisher(ingest: FakeIngest, sleeps: list[float] | None = None, **options: Any) -> Publisher:
    record_sleep: Callable[[float], None] = (sleeps if sleeps is not None else []).append
    return Publisher(INGEST, "key-1", transport=httpx.MockTransport(ingest), sleep=record_sleep, **options)


def arrival(number: int, delay_s: int = 42) -> dict[str, Any]:
    return {"arrival_id": f"a-{number}", "stop_id": "S0042", "route_id": "71", "delay_s": delay_s}


# --- publish ---------------------------------------------------------------------------------


def test_publish_sends_a_json_array_with_an_idempotency_key() -> None:
    ingest = FakeIngest()
    with publisher(ingest) as client:
        result = client.publish(DATASET, [arrival(1), arrival(2, delay_s=99_999), arrival(3)])
    assert (result.accepted, result.rejected, result.attempts) == (2, 1, 1)
    assert result.errors[0].index == 1 and result.errors[0].rule == "maximum"
    request = ingest.requests[0]
    assert request.url == f"{INGEST}/v1/datasets/{DATASET}/records"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == result.idempotency_key
    assert json.loads(request.content)[2]["arrival_id"] == "a-3"


def test_records_may_hold_times_and_must_not_hold_nan() -> None:
    ingest = FakeIngest()
    with publisher(ingest) as client:
        client.publish(DATASET, [{**arrival(1), "arrived_at": datetime(2026, 11, 24, 8, 15, tzinfo=UTC)}])
        assert json.loads(ingest.requests[0].content)[0]["arrived_at"] == "2026-11-24T08:15:00+00:00"
        with pytest.raises(ValueError, match="Out of range float"):
            client.publish(DATASET, [{"delay_s": float("nan")}])
        with pytest.raises(TypeError, match="time offset"):
            client.publish(DATASET, [{"arrived_at": datetime(2026, 11, 24, 8, 15)}])


def test_busy_and_unavailable_answers_are_retried_with_the_same_key_after_retry_after() -> None:
    ingest = FakeIngest(
        _with_retry_after(429, "3"),
        _with_retry_after(503, "5"),
        httpx.ConnectError("connection reset"),
        problem(409, "idempotency-key-in-progress", "still running"),
    )
    sleeps: list[float] = []
    with publisher(ingest, sleeps) as client:
        result = client.publish(DATASET, [arrival(1)], idempotency_key="batch-0001")
    assert result.accepted == 1 and result.attempts == 5
    assert {request.headers["Idempotency-Key"] for request in ingest.requests} == {"batch-0001"}
    assert sleeps[0] >= 3 and sleeps[1] >= 5  # Retry-After is a floor
    assert all(0 < delay <= 60 for delay in sleeps)


def _with_retry_after(status: int, seconds: str) -> httpx.Response:
    response = problem(status, "publisher-busy" if status == 429 else "publish-failed", "try later")
    response.headers["Retry-After"] = seconds
    return response


def test_retries_are_bounded() -> None:
    ingest = FakeIngest(*[_with_retry_after(503, "1") for _ in range(10)])
    sleeps: list[float] = []
    with publisher(ingest, sleeps, max_retries=3) as client, pytest.raises(PublishError) as raised:
        client.publish(DATASET, [arrival(1)])
    assert raised.value.status == 503 and raised.value.retryable
    assert raised.value.attempts == 4 and len(ingest.requests) == 4 and len(sleeps) == 3
    assert raised.value.slug == "publish-failed"


def test_a_refused_batch_raises_with_the_problem_and_is_not_retried() -> None:
    errors = [{"path": "/header/0", "rule": "additionalProperties", "message": "column 'x' is not a field"}]
    ingest = FakeIngest(problem(422, "csv-header-mismatch", "1 problem(s)", errors=errors))
    with publisher(ingest) as client, pytest.raises(PublishError) as raised:
        client.publish(DATASET, [arrival(1)])
    assert raised.value.status == 422 and not raised.value.retryable
    assert raised.value.slug == "csv-header-mismatch" and raised.value.errors == errors
    assert "422" in str(raised.value) and len(ingest.requests) == 1


def test_check_publishes_nothing_and_says_why_records_would_be_refused() -> None:
    ingest = FakeIngest(
        problem(400, "empty-body", "the array holds no records"),
        problem(403, "not-dataset-publisher", "belongs to transport-bureau"),
    )
    with publisher(ingest) as client:
        client.check(DATASET)
        with pytest.raises(PublishError) as raised:
            client.check(DATASET)
    assert raised.value.status == 403 and raised.value.slug == "not-dataset-publisher"
    assert all(request.content == b"[]" for request in ingest.requests)
    assert all("Idempotency-Key" not in request.headers for request in ingest.requests)


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert retry_after_s("7") == 7.0
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_s(later, now=now.timestamp()) == pytest.approx(30)
    assert retry_after_s("soon") is None and retry_after_s(None) is None


# --- publish_file ------------------------------------------------------------------------------

CSV_FILE = (
    "\ufeffarrival_id,stop_id,route_id,delay_s\n"  # line 1
    "a-1,S0042,71,42\n"  # 2
    "a-2,S0042,71,99999\n"  # 3
    "\n"  # 4: blank, skipped as ingest skips it
    'a-3,S0043,"Night\n305",12\n'  # 5-6: a quoted cell across two lines
    "a-4,S0044,927,-30\n"  # 7
    "a-5,S0045,927,20000\n"  # 8
)


def test_a_csv_file_goes_in_batches_each_with_the_header(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text(CSV_FILE, encoding="utf-8")
    ingest = FakeIngest()
    progress: list[tuple[int, int, int]] = []

    def on_batch(result: BatchResult, totals: FileResult) -> None:
        progress.append((totals.sent, totals.accepted, totals.rejected))

    with publisher(ingest) as client:
        totals = client.publish_file(DATASET, path, batch_size=2, on_batch=on_batch)
    assert (totals.sent, totals.accepted, totals.rejected, totals.batches) == (5, 3, 2, 3)
    assert [(row.line, row.path, row.rule) for row in totals.rejected_rows] == [
        (3, "/delay_s", "maximum"),
        (8, "/delay_s", "maximum"),
    ]
    assert progress == [(2, 1, 1), (4, 3, 1), (5, 3, 2)]
    assert totals.bytes_read == totals.bytes_total == path.stat().st_size
    for request in ingest.requests:
        assert request.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert request.content.decode().startswith("arrival_id,stop_id,route_id,delay_s\n")
    assert records_of(ingest.requests[1])[0]["route_id"] == "Night\n305"
    assert len({request.headers["Idempotency-Key"] for request in ingest.requests}) == 3


def test_an_ndjson_file_goes_line_by_line_and_a_line_that_is_not_json_is_rejected_here(
    tmp_path: Path,
) -> None:
    path = tmp_path / "arrivals.ndjson"
    lines = [
        json.dumps(arrival(1)),
        "",
        "{not json",
        json.dumps(arrival(2, delay_s=50_000)),
        json.dumps(arrival(3)),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ingest = FakeIngest()
    with publisher(ingest) as client:
        totals = client.publish_file(DATASET, path, batch_size=10, idempotency_prefix="arrivals-2026-11-24")
    assert (totals.sent, totals.accepted, totals.rejected) == (4, 2, 2)
    assert [(row.line, row.rule) for row in totals.rejected_rows] == [(3, "parse"), (4, "maximum")]
    (request,) = ingest.requests
    assert request.headers["Content-Type"] == "application/x-ndjson"
    assert request.headers["Idempotency-Key"] == "arrivals-2026-11-24-1"
    assert request.content.decode().splitlines() == [lines[0], lines[3], lines[4]]


def test_a_json_array_file_is_numbered_by_the_line_each_record_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.json"
    path.write_text(
        json.dumps([arrival(1), arrival(2, delay_s=90_000), arrival(3)], indent=2), encoding="utf-8"
    )
    with publisher(FakeIngest()) as client:
        totals = client.publish_file(DATASET, path, batch_size=2)
    assert (totals.sent, totals.accepted, totals.batches) == (3, 2, 2)
    assert [row.line for row in totals.rejected_rows] == [8]


def test_a_refused_batch_of_a_file_carries_what_came_before(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text(CSV_FILE, encoding="utf-8")
    ingest = FakeIngest(_accepted(2), problem(413, "payload-too-large", "too big"))
    with publisher(ingest) as client, pytest.raises(PublishError) as raised:
        client.publish_file(DATASET, path, batch_size=2)
    assert raised.value.status == 413
    assert raised.value.partial is not None and raised.value.partial.accepted == 2


def _accepted(count: int) -> httpx.Response:
    body = {
        "dataset": DATASET,
        "contract_version": "1.1.0",
        "accepted": count,
        "rejected": 0,
        "event_ids": [],
    }
    return httpx.Response(202, json={**body, "errors": []})


def test_unknown_file_types_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "arrivals.xlsx"
    path.write_bytes(b"PK")
    with publisher(FakeIngest()) as client, pytest.raises(ValueError, match="cannot tell the format"):
        client.publish_file(DATASET, path)


# --- citybase publish ----------------------------------------------------------------------------


@pytest.fixture
def fake_ingest(monkeypatch: pytest.MonkeyPatch) -> FakeIngest:
    ingest = FakeIngest()
    monkeypatch.setattr(
        publish_cli,
        "Publisher",
        partial(Publisher, transport=httpx.MockTransport(ingest), sleep=lambda _seconds: None),
    )
    return ingest


def publish_command(path: Path, *extra: str, key: str = "key-1") -> Any:
    args = ["publish", str(path), "--dataset", DATASET, "--url", INGEST, *extra]
    return runner.invoke(app, [*args, "--key", key] if key else args, env={"COLUMNS": "160"})


def test_the_command_exits_0_when_everything_is_accepted(tmp_path: Path, fake_ingest: FakeIngest) -> None:
    path = tmp_path / "good.csv"
    path.write_text(
        "arrival_id,stop_id,route_id,delay_s\na-1,S0042,71,42\na-2,S0043,71,-5\n", encoding="utf-8"
    )
    result = publish_command(path)
    assert result.exit_code == 0, result.output
    assert "2 records, 2 accepted, 0 rejected" in result.output


def test_the_command_exits_1_and_lists_the_rejected_rows(tmp_path: Path, fake_ingest: FakeIngest) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text(CSV_FILE, encoding="utf-8")
    result = publish_command(path, "--batch-size", "2")
    assert result.exit_code == 1, result.output
    assert "5 records, 3 accepted, 2 rejected" in result.output
    listed = [line for line in result.output.splitlines() if "/delay_s" in line]
    assert [line.split()[1] for line in listed] == ["3", "8"]
    assert all("maximum" in line and "at most 10800" in line for line in listed)
    assert f"dlq.{DATASET}" in result.output
    shortened = publish_command(path, "--show", "1")
    assert "Rejected rows (1 of 2 errors)" in shortened.output


def test_the_command_exits_2_on_usage_and_key_problems(tmp_path: Path, fake_ingest: FakeIngest) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text(CSV_FILE, encoding="utf-8")
    no_key = publish_command(path, key="")
    assert no_key.exit_code == 2 and "an API key is needed" in no_key.output
    wrong_key = publish_command(path, key="key-2")
    assert wrong_key.exit_code == 2 and "401" in wrong_key.output
    unknown = runner.invoke(
        app, ["publish", str(path), "--dataset", "x.y", "--url", INGEST, "--key", "key-1"]
    )
    assert unknown.exit_code == 2 and "404" in unknown.output
    other = tmp_path / "arrivals.txt"
    other.write_text("x", encoding="utf-8")
    assert publish_command(other).exit_code == 2


def test_the_command_exits_3_when_ingest_cannot_be_reached(tmp_path: Path, fake_ingest: FakeIngest) -> None:
    path = tmp_path / "arrivals.csv"
    path.write_text(CSV_FILE, encoding="utf-8")
    fake_ingest.script = [httpx.ConnectError("connection refused")] * 6
    result = publish_command(path)
    assert result.exit_code == 3, result.output
    assert "no answer" in result.output and len(fake_ingest.requests) == 6


def test_the_command_asks_ingest_to_answer_in_the_commands_language(
    tmp_path: Path, fake_ingest: FakeIngest
) -> None:
    path = tmp_path / "good.csv"
    path.write_text("arrival_id,stop_id,route_id,delay_s\na-1,S0042,71,42\n", encoding="utf-8")
    args = ["publish", str(path), "--dataset", DATASET, "--url", INGEST, "--key", "key-1"]
    chinese = runner.invoke(app, args, env={"COLUMNS": "160", "LANG": "zh_CN.UTF-8"})
    assert chinese.exit_code == 0, chinese.output
    assert fake_ingest.requests[-1].headers["Accept-Language"] == "zh-CN"
    english = runner.invoke(app, ["--lang", "en", *args], env={"COLUMNS": "160", "LANG": "zh_CN.UTF-8"})
    assert english.exit_code == 0, english.output
    assert fake_ingest.requests[-1].headers["Accept-Language"] == "en"
