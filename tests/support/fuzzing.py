"""Schema-driven fuzzing of one service's OpenAPI with schemathesis, through an app already running.

schemathesis generates each operation's requests (valid ones, and in negative mode ones that break
the schema), the platform's own ``TestClient`` sends them (so the app keeps its one lifespan), and
schemathesis' checks judge each answer: no 5xx, a documented status code and content type, and a
body that conforms to the documented schema. Every operation is tried three ways: with generated
path ids (mostly unknown: the 404 paths), with the ids of real objects (the handlers' paths), and
with negative data; each failure is kept (not only the first) so that one run lists them all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Path parameters never replaced by a real object's id: a fuzzed DELETE of a real key would revoke
# the key the fuzzing itself runs with.
KEEP_GENERATED = {"principal_id", "prefix"}


def examples_per_operation(default: int) -> int:
    """How many cases per operation and way: CITYBASE_FUZZ_EXAMPLES (``make fuzz``) or the default."""
    return int(os.environ.get("CITYBASE_FUZZ_EXAMPLES", default))


def time_budget_s(default: float) -> float:
    """The wall-clock bound of one service's run: CITYBASE_FUZZ_SECONDS or the default."""
    return float(os.environ.get("CITYBASE_FUZZ_SECONDS", default))


@dataclass
class FuzzReport:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # "operation / way" -> first failure

    @property
    def handled(self) -> int:
        """Cases that got past authentication and routing to a handler's own answer."""
        return sum(n for status, n in self.statuses.items() if status not in (401, 403, 404, 405))


def _httpx_kwargs(case: schemathesis.Case, base_url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """schemathesis serializes a case for ``requests``; ``TestClient`` speaks httpx."""
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=dict(headers))
    kwargs.pop("timeout", None)
    kwargs["cookies"] = kwargs.get("cookies") or None
    if "data" in kwargs and isinstance(kwargs["data"], bytes | str):
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("auth") is not None:
        kwargs.pop("auth")
    return kwargs


def _sender(
    client: TestClient, base_url: str, headers: Mapping[str, str], report: FuzzReport, label: str
) -> Any:
    def send(case: schemathesis.Case) -> None:
        kwargs = _httpx_kwargs(case, base_url, headers)
        try:
            response = client.request(**kwargs)
        except Exception as error:  # the app raised: a 500 (TestClient re-raises it)
            report.cases += 1
            report.statuses[500] = report.statuses.get(500, 0) + 1
            report.failures.setdefault(
                label, f"{kwargs['method']} {kwargs['url']} {kwargs.get('params')!r} raised {error!r}"[:1500]
            )
            return
        report.cases += 1
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as failure:
            if label not in report.failures:
                request = response.request
                report.failures[label] = (
                    f"{request.method} {request.url} body={request.content[:300]!r} -> "
                    f"{response.status_code} {response.text[:300]}\n{str(failure)[:800]}"
                )

    return send


def fuzz_service(
    client: TestClient,
    openapi: dict[str, Any],
    *,
    prefix: str,
    key: str,
    real_ids: Mapping[str, str],
    max_examples: int,
    deadline_s: float,
    derandomize: bool,
    skip: frozenset[str] = frozenset(),
) -> FuzzReport:
    """Fuzz every operation of ``openapi`` (served under ``prefix``) as the holder of ``key``."""
    schema = schemathesis.openapi.from_dict(openapi)
    report = FuzzReport()
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    base_url = f"http://testserver{prefix}"
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in skip:
            continue
        names = {parameter.name for parameter in operation.path_parameters}
        overrides = {
            name: real_ids[name] for name in names if name in real_ids and name not in KEEP_GENERATED
        }
        ways: list[tuple[str, GenerationMode, dict[str, str] | None]] = [
            ("generated ids", GenerationMode.POSITIVE, None),
            ("negative data", GenerationMode.NEGATIVE, None),
        ]
        if overrides:
            ways.append(("real ids", GenerationMode.POSITIVE, overrides))
        for way, mode, path_parameters in ways:
            if time.monotonic() - started > deadline_s:
                report.failures.setdefault("time", f"the time budget of {deadline_s:.0f} s ran out")
                return report
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            label = f"{operation.label} / {way}"
            settings = hypothesis.settings(
                max_examples=max_examples,
                deadline=None,
                derandomize=derandomize,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            )
            send = _sender(client, base_url, headers, report, label)
            try:
                settings(hypothesis.given(case=strategy)(send))()
            except hypothesis.errors.Unsatisfiable:
                # No request of this kind exists (negative data for an operation without inputs).
                continue
    return report
