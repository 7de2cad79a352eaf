"""Every operation of every service, fuzzed from its own OpenAPI document (schemathesis).

Each service is called as a principal that gets past authentication to its handlers: the admin
for catalog and quality, the owning department's publisher for ingest (its records operation on a
real dataset), a scenario with a grant for feeds. A failure is a real defect: a 5xx, an
undocumented status code or content type, or a body that does not match its documented schema.

``make test`` runs a bounded number of cases per operation, deterministically (derandomized);
``make fuzz`` runs many more (CITYBASE_FUZZ_EXAMPLES per operation and way, CITYBASE_FUZZ_SECONDS
per service at most), randomized.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.support.fuzzing import examples_per_operation, fuzz_service, time_budget_s
from tests.support.platform import Platform

FUZZING = os.environ.get("CITYBASE_FUZZ") == "1"

# service -> the principal whose key it is fuzzed with. The catalog comes last: its fuzzed PATCHes
# and revocations may suspend the scenario or end the grant the feeds are fuzzed with.
CALLERS = {"feeds": "one-stop-visit", "ingest": "market-publisher", "quality": "admin", "catalog": "admin"}
# Cases per operation and way in `make test`, so that each service gets a few hundred to a
# thousand or so per database in about a minute (ingest has one operation that takes a body).
EXAMPLES = {"feeds": 15, "ingest": 60, "quality": 20, "catalog": 12}


@pytest.mark.slow
@pytest.mark.parametrize("service", list(CALLERS))
def test_every_operation_answers_as_documented_under_fuzzing(platform: Platform, service: str) -> None:
    caller = CALLERS[service]
    key = platform.admin_key if caller == "admin" else platform.keys[caller]
    started = time.monotonic()
    report = fuzz_service(
        platform.client,
        platform.app.state.services[service].openapi(),
        prefix=f"/{service}",
        key=key,
        real_ids=platform.context,
        max_examples=examples_per_operation(EXAMPLES[service]),
        deadline_s=time_budget_s(240.0),
        derandomize=not FUZZING,
    )
    elapsed = time.monotonic() - started
    print(
        f"\n{service}: {report.cases} cases in {elapsed:.1f} s, {report.handled} past auth and routing, "
        f"statuses {dict(sorted(report.statuses.items()))}"
    )
    assert report.failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in report.failures.items())
    assert report.cases > 0
    assert report.handled > report.cases // 4, "most cases never reached a handler"
