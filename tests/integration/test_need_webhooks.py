"""A need's followers told of an answer, in one process (``citybase up``'s app on SQLite and the
embedded bus): one follower gave a webhook and receives the signed notice once, the other reads the
notice on platform.catalog; the delivery log, the secret shown once, the end of a follow, the same
through the console's need page; and the flood limit of organisations registering without a key."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.common import catalog_events
from services.common.webhooks import SIGNATURE_HEADER, sign
from services.common.worker import wait_until
from tests.factories import applicant_create, follow_create, need_create
from tests.support.platform import Platform, in_process
from tests.support.problems import expect_problem
from tests.support.webhooks import Receiver

VISIT, COMMUNITY, HEALTH = "one-stop-visit", "ai-community", "health-publisher"
ENVIRONMENT = {
    # A receiver on this machine, pushed to at once; two registrations per address.
    "CITYBASE_NEEDS_WEBHOOK_ALLOW_LOOPBACK": "true",
    "CITYBASE_NEEDS_WEBHOOK_ALLOW_HTTP_HOSTS": '["127.0.0.1"]',
    "CITYBASE_NEEDS_WEBHOOK_SCAN_INTERVAL_S": "0.1",
    "CITYBASE_NEEDS_APPLICANT_LIMIT": "2",
}


def _people(platform: Platform) -> None:
    platform.scenario(VISIT)
    platform.scenario(COMMUNITY)
    platform.principal(HEALTH, "department", "health-commission")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(
        tmp_path_factory.mktemp("need-webhooks"), environment=ENVIRONMENT, prepare_platform=_people
    ) as platform:
        yield platform


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


def _need_notices(platform: Platform) -> list[dict[str, Any]]:
    """The need notices on platform.catalog, as a follower reading the stream sees them."""
    return [
        state
        for event_type, _, state in platform.catalog_events()
        if event_type == catalog_events.NEED_NOTICE
    ]


def test_an_answer_reaches_the_webhook_once_signed_and_the_other_follower_on_the_stream(
    platform: Platform, receiver: Receiver
) -> None:
    visit, community, health = (platform.keys[who] for who in (VISIT, COMMUNITY, HEALTH))
    need = platform.ok("POST", "/catalog/v1/needs", visit, json=need_create())["need"]
    need_id = need["id"]  # the filer follows it, without a webhook
    followed = platform.ok(
        "POST", f"/catalog/v1/needs/{need_id}/follow", community, json=follow_create(receiver.url)
    )
    secret = followed["webhook_secret"]
    assert (followed["following"], followed["webhook_url"]) == (True, receiver.url)
    assert secret.startswith("whsec_")
    shown = platform.ok("GET", f"/catalog/v1/needs/{need_id}/follow", community)
    assert (shown["webhook_url"], shown["webhook_secret"]) == (receiver.url, None)

    answer = platform.ok(
        "POST", f"/catalog/v1/needs/{need_id}/decline", health, json={"reason": "No ward reports beds."}
    )
    assert answer["status"] == "declined"

    assert wait_until(lambda: len(receiver.received) >= 1, timeout_s=10), "the webhook was not pushed to"
    time.sleep(1.0)  # several rounds of the pusher: still one push
    [hit] = receiver.received
    timestamp = int(hit["headers"][SIGNATURE_HEADER].split(",")[0].removeprefix("t="))
    assert hit["headers"][SIGNATURE_HEADER] == sign(secret, timestamp, hit["body"])
    pushed = json.loads(hit["body"])
    assert (pushed["need_id"], pushed["kind"], pushed["followers"]) == (need_id, "answer", [COMMUNITY])
    assert pushed["summary"]["reason"] == "No ward reports beds."

    # The follower without a webhook reads the same notice on the event stream.
    [notice] = [n for n in _need_notices(platform) if n["need_id"] == need_id]
    assert (notice["id"], notice["followers"]) == (pushed["id"], [VISIT, COMMUNITY])

    [delivery] = platform.ok("GET", f"/catalog/v1/needs/{need_id}/follow/deliveries", community)
    assert (delivery["status"], delivery["attempts"], delivery["http_status"], delivery["last_error"]) == (
        "delivered",
        1,
        200,
        None,
    )
    assert delivery["notice_id"] == pushed["id"]
    assert platform.ok("GET", f"/catalog/v1/needs/{need_id}/follow/deliveries", visit) == []

    # DELETE of the follow stops it: the next notice goes to the stream only.
    stopped = platform.ok("DELETE", f"/catalog/v1/needs/{need_id}/follow", community)
    assert (stopped["following"], stopped["webhook_url"]) == (False, None)
    platform.ok("POST", f"/catalog/v1/needs/{need_id}/comments", visit, json={"body": "Thanks anyway."})
    time.sleep(1.0)
    assert len(receiver.received) == 1


def test_a_webhook_inside_the_network_is_refused_with_its_field(platform: Platform) -> None:
    visit = platform.keys[VISIT]
    need_id = platform.ok("POST", "/catalog/v1/needs", visit, json=need_create(title="Night pharmacies"))[
        "need"
    ]["id"]
    for url in ("https://10.0.0.1/hook", "https://169.254.169.254/latest/meta-data/", "ftp://example.cn/x"):
        refused = expect_problem(
            platform.call("POST", f"/catalog/v1/needs/{need_id}/follow", visit, json=follow_create(url)),
            422,
            "invalid-webhook",
        )
        assert refused["path"] == "/body/webhook/url"
    assert platform.ok("GET", f"/catalog/v1/needs/{need_id}/follow", visit)["webhook_url"] is None


def test_organisations_registering_without_a_key_are_limited_per_address(platform: Platform) -> None:
    for applicant_id in ("flood-lab-1", "flood-lab-2"):
        registered = platform.call(
            "POST", "/catalog/v1/applicants", None, json=applicant_create(applicant_id)
        )
        assert registered.status_code == 201, registered.text
    flood = platform.call("POST", "/catalog/v1/applicants", None, json=applicant_create("flood-lab-3"))
    problem = expect_problem(flood, 429, "applicant-registration-flood")
    assert "2 registrations per 3600 s" in problem["detail"]
    assert 1 <= int(flood.headers["Retry-After"]) <= 3600
    # Refused before anything else: an id that is taken reads the same.
    again = platform.call("POST", "/catalog/v1/applicants", None, json=applicant_create("flood-lab-1"))
    expect_problem(again, 429, "applicant-registration-flood")
    listed = platform.ok("GET", "/catalog/v1/applicants")
    assert "flood-lab-3" not in {applicant["id"] for applicant in listed}


def test_the_console_follows_with_a_webhook_shows_its_secret_once_and_lists_the_pushes(
    platform: Platform, receiver: Receiver
) -> None:
    client = platform.client
    assert isinstance(client, TestClient)
    client.cookies.clear()
    login = client.post(
        "/console/login", data={"key": platform.keys[COMMUNITY], "next": "/console/"}, follow_redirects=False
    )
    assert login.status_code == 303, login.text
    need_id = platform.ok(
        "POST", "/catalog/v1/needs", platform.keys[VISIT], json=need_create(title="Street lights out")
    )["need"]["id"]
    page = client.get(f"/console/needs/{need_id}")
    assert 'id="follow-form"' in page.text and 'name="webhook_url"' in page.text

    refused = client.post(
        f"/console/needs/{need_id}/follow",
        data={"webhook_url": "https://10.1.2.3/hook"},
        follow_redirects=False,
    )
    assert refused.status_code == 422, refused.text
    assert 'value="https://10.1.2.3/hook"' in refused.text  # what was typed is kept beside the reason

    shown = client.post(
        f"/console/needs/{need_id}/follow", data={"webhook_url": receiver.url}, follow_redirects=False
    )
    assert shown.status_code == 201, shown.text
    assert shown.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="webhook-secret">([^<]+)</code>', shown.text)
    assert found is not None
    secret = found.group(1)
    assert secret.startswith("whsec_")

    platform.ok(
        "POST", f"/catalog/v1/needs/{need_id}/decline", platform.keys[HEALTH], json={"reason": "Not ours."}
    )
    assert wait_until(lambda: len(receiver.received) == 1, timeout_s=10)
    assert wait_until(
        lambda: 'class="tag delivered"' in client.get(f"/console/needs/{need_id}").text, timeout_s=10
    ), "the push is not listed on the need's page"
    page = client.get(f"/console/needs/{need_id}")
    assert receiver.url in page.text and secret not in page.text

    # Following without a webhook removes it.
    again = client.post(f"/console/needs/{need_id}/follow", data={"webhook_url": ""}, follow_redirects=False)
    assert again.status_code == 303, again.text
    assert (
        platform.ok("GET", f"/catalog/v1/needs/{need_id}/follow", platform.keys[COMMUNITY])["webhook_url"]
        is None
    )
