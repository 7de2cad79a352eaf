"""Threats to delivery: a scenario that keeps receiving after its keys are revoked or it is
suspended, a webhook aimed inside the platform's network, one scenario taking every stream.

Each test runs catalog + ingest (SQLite, embedded bus) and a feeds served by uvicorn on 127.0.0.1
(Server-Sent Events as in production). No test sends a packet beyond 127.0.0.1: webhook hosts are
resolved by a resolver the test hands to feeds, and the pushers' HTTP transport answers anything
not addressed to 127.0.0.1 itself, without a connection.

The figures each test measures are printed (``pytest -s``) and asserted.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.worker import wait_until
from services.feeds.runtime import FeedsRuntime
from services.ingest.settings import IngestSettings
from tests.support.services import (
    FeedsPlatform,
    IngestPlatform,
    Scenario,
    feeds_settings_for_tests,
    running_feeds,
    running_platform,
)
from tests.support.webhooks import Receiver

PROBLEM = "application/problem+json"
PUBLIC = "93.184.215.14"
"""A public address the fake resolver gives; nothing is ever sent to it."""


@pytest.fixture
def ingest(tmp_path: Path, unique_name: str) -> Iterator[IngestPlatform]:
    with running_platform(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'citybase.db'}",
        bus_url=None,
        ingest_settings=IngestSettings(raw_group_id=f"citybase-ingest-raw-{unique_name}"),
        bus_kind="embedded",
    ) as running:
        yield running


def _catalog_scenario(feeds: FeedsPlatform, name: str) -> tuple[Scenario, str]:
    """A scenario registered through the catalog's API, with one key; (scenario, key prefix)."""
    catalog = feeds.platform.catalog
    scenario_id = f"{name}-{uuid.uuid4().hex[:8]}"
    created = catalog.call(
        "POST",
        "/v1/scenarios",
        json={"id": scenario_id, "name": name, "organisation": "Test", "contact": "team@example.org"},
    )
    assert created.status_code == 201, created.text
    issued = catalog.call("POST", f"/v1/scenarios/{scenario_id}/keys", json={"name": "delivery"})
    assert issued.status_code == 201, issued.text
    key = issued.json()["key"]
    feeds.wait_for_key(key)
    return Scenario(scenario_id, key), issued.json()["prefix"]


class StreamWatch:
    """An SSE stream read on a thread of its own: each record and the final ``end`` event, with
    the moment (monotonic) they arrived."""

    def __init__(self, url: str, key: str, subscription_id: str) -> None:
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.end: tuple[float, dict[str, Any]] | None = None
        self.status: int | None = None
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._args = (url, key, subscription_id)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        url, key, subscription_id = self._args
        with (
            httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=30)) as client,
            client.stream(
                "GET",
                f"/v1/subscriptions/{subscription_id}/stream",
                headers={"Authorization": f"Bearer {key}"},
            ) as response,
        ):
            self.status = response.status_code
            self.opened.set()
            event: str | None = None
            data: str | None = None
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif line == "" and data is not None:
                    now, body = time.monotonic(), json.loads(data)
                    if event == "records":
                        self.records += [(now, record) for record in body["records"]]
                    elif event == "end":
                        self.end = (now, body)
                        return
                    event = data = None

    def close(self) -> None:
        self._stop.set()  # the stream's keep-alives wake the reader at least every half second
        self._thread.join(15)


def _long_poll(url: str, key: str, subscription_id: str, result: dict[str, Any]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        response = client.get(
            f"/v1/subscriptions/{subscription_id}/records",
            params={"max": 100, "wait": 20},
            headers={"Authorization": f"Bearer {key}"},
        )
    result.update(
        returned=time.monotonic(),
        status=response.status_code,
        content_type=response.headers.get("content-type"),
        body=response.json(),
    )


@pytest.mark.parametrize("stop", ["every key revoked", "scenario suspended"])
def test_delivery_stops_within_a_second_of_key_revocation_or_scenario_suspension(
    ingest: IngestPlatform, stop: str
) -> None:
    """Finding 2: an open stream, a waiting long-poll and a webhook all stop; records published
    2 s after the change reach none of them."""
    settings = feeds_settings_for_tests(webhook_allow_loopback=True, sse_heartbeat_s=0.5)
    receiver = Receiver()
    with running_feeds(ingest, settings) as feeds:
        dataset = feeds.dataset()
        scenario, prefix = _catalog_scenario(feeds, "revocable")
        feeds.grant(scenario, dataset.id)
        streamed = feeds.subscribe(scenario, dataset.id, start="latest")
        hooked = feeds.subscribe(scenario, dataset.id, start="latest", webhook={"url": receiver.url})
        watch = StreamWatch(feeds.url, scenario.key, streamed["id"])
        try:
            assert watch.opened.wait(30) and watch.status == 200, watch.status
            # Delivery works before the change, on every door.
            feeds.publish(dataset, 2)
            assert wait_until(lambda: len(watch.records) >= 2, 30), watch.records
            assert wait_until(lambda: len(receiver.accepted_records()) >= 2, 30), receiver.received
            polled = feeds.subscribe(scenario, dataset.id, start="latest")
            poll: dict[str, Any] = {}
            poller = threading.Thread(
                target=_long_poll, args=(feeds.url, scenario.key, polled["id"], poll), daemon=True
            )
            poller.start()
            time.sleep(1.0)  # the long-poll is waiting for records

            changed = time.monotonic()
            if stop == "every key revoked":
                revoked = feeds.platform.catalog.call("DELETE", f"/v1/principals/{scenario.id}/keys/{prefix}")
                assert revoked.status_code == 200, revoked.text
            else:
                suspended = feeds.platform.catalog.call(
                    "PATCH", f"/v1/scenarios/{scenario.id}", json={"status": "suspended"}
                )
                assert suspended.status_code == 200, suspended.text
            wait_until(lambda: watch.end is not None, 2.0)
            time.sleep(max(0.0, changed + 2.0 - time.monotonic()))
            late = {r["_event_id"] for r in feeds.publish(dataset, 3)}  # 2 s after the change
            time.sleep(3.0)
        finally:
            watch.close()
        poller.join(30)
        replay = feeds.call(
            "POST", f"/v1/subscriptions/{streamed['id']}/replay", scenario, json={"to": "earliest"}
        )
        log = feeds.call("GET", f"/v1/subscriptions/{hooked['id']}/deliveries", scenario)
    receiver.close()

    late_on_stream = sum(1 for _, record in watch.records if record["id"] in late)
    late_at_webhook = sum(1 for record in receiver.accepted_records() if record["id"] in late)
    late_on_poll = sum(1 for record in poll.get("body", {}).get("records", []) if record["id"] in late)
    stream_end_ms = round((watch.end[0] - changed) * 1000) if watch.end else None
    poll_end_ms = round((poll["returned"] - changed) * 1000) if poll else None
    print(
        f"\n[{stop}] records published 2 s after: stream {late_on_stream}, webhook {late_at_webhook}, "
        f"long-poll {late_on_poll}; stream ended after {stream_end_ms} ms, "
        f"waiting long-poll answered after {poll_end_ms} ms"
    )
    assert late_on_stream == 0 and late_at_webhook == 0 and late_on_poll == 0
    assert watch.end is not None, "the stream did not end"
    assert stream_end_ms is not None and stream_end_ms <= 1000, stream_end_ms
    ended = watch.end[1]
    reason = "key_revoked" if stop == "every key revoked" else "suspended"
    assert ended["status"] == 401 and ended["type"].endswith("/access-withdrawn"), ended
    assert ended["reason"] == reason, ended
    assert poll["status"] == 401 and poll["content_type"] == PROBLEM, poll
    assert poll["body"]["type"].endswith("/access-withdrawn") and poll["body"]["reason"] == reason
    assert poll_end_ms is not None and poll_end_ms <= 1000, poll_end_ms
    assert replay.status_code == 401  # a new request is refused at the door
    assert log.status_code == 401


class FakeDns:
    """The resolver feeds is handed: answers from ``answers``, counts who was asked."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


class LoopbackOnly(httpx.BaseTransport):
    """The pushers' transport in tests: sends to 127.0.0.1 only; a request for any other address
    is recorded and answered 200 here, never sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "127.0.0.1":
            return self._real.handle_request(request)
        return httpx.Response(200, request=request)

    def close(self) -> None:
        self._real.close()


class Listener:
    """A TCP port on 127.0.0.1 that counts connections; ``hang_up`` closes each at once."""

    def __init__(self) -> None:
        self.accepted = 0
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.socket.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_webhooks_reach_public_addresses_only_at_creation_and_at_every_delivery(
    ingest: IngestPlatform,
) -> None:
    """Finding 6: link-local, private, loopback and unspecified targets are refused at creation;
    a name that resolves elsewhere since is checked again before every delivery and refused without
    a connection; the delivery log reads the same for a refused target, a closed port and a port
    that hangs up."""
    from services.common.webhooks import WebhookTargets
    from services.feeds.webhooks import UNREACHABLE, WebhookPusher

    dns = FakeDns()
    listener = Listener()
    closed = _closed_port()
    settings = feeds_settings_for_tests(webhook_enabled=False, webhook_max_failures=50)
    with running_feeds(ingest, settings, webhook_resolver=dns) as feeds:
        dataset = feeds.dataset()
        scenario = feeds.scenario()
        feeds.grant(scenario, dataset.id)
        dns.answers.update(
            {
                "loopback.scenario.test": ["127.0.0.1"],
                "metadata.scenario.test": ["169.254.169.254"],
                "mixed.scenario.test": [PUBLIC, "10.0.0.1"],
                "v6-loopback.scenario.test": ["::1"],
            }
        )
        refused_urls = [
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/hook",
            "https://192.168.1.10/hook",
            "https://100.64.0.1/hook",
            f"http://127.0.0.1:{listener.port}/hook",
            f"https://127.0.0.1:{listener.port}/hook",
            f"http://localhost:{listener.port}/hook",
            "https://[::1]/hook",
            "https://0.0.0.0/hook",
            "https://[::]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://[fe80::1]/hook",
            "https://[fd00::1]/hook",
            "https://loopback.scenario.test/hook",
            "https://metadata.scenario.test/hook",
            "https://mixed.scenario.test/hook",
            "https://v6-loopback.scenario.test/hook",
            "https://unknown.scenario.test/hook",
        ]
        at_creation: dict[str, int] = {}
        details: dict[str, str] = {}
        for url in refused_urls:
            response = feeds.call(
                "POST", "/v1/subscriptions", scenario, json={"dataset": dataset.id, "webhook": {"url": url}}
            )
            at_creation[url] = response.status_code
            if response.headers.get("content-type") == PROBLEM:
                assert response.json()["type"].endswith("/invalid-webhook"), response.text
                details[url] = response.json()["detail"]
        # A name's refusal does not say what it resolved to, nor whether it resolved.
        by_name = {details.get(u) for u in refused_urls if ".scenario.test" in u}

        # Created while the names resolve to a public address; resolved again at each delivery.
        names = ["rebind", "metadata-later", "closed", "hangup"]
        ports = {"rebind": closed, "metadata-later": 443, "closed": closed, "hangup": listener.port}
        for name in names:
            dns.answers[f"{name}.scenario.test"] = [PUBLIC]
        subscriptions = {
            name: feeds.subscribe(
                scenario,
                dataset.id,
                start="latest",
                webhook={"url": f"https://{name}.scenario.test:{ports[name]}/hook"},
            )["id"]
            for name in names
        }
        feeds.publish(dataset, 1)
        dns.answers.update(
            {
                "rebind.scenario.test": ["127.0.0.1"],
                "metadata-later.scenario.test": ["169.254.169.254"],
                "closed.scenario.test": ["127.0.0.1"],
                "hangup.scenario.test": ["127.0.0.1"],
            }
        )
        runtime_feeds = feeds.runtime.service_as(FeedsRuntime).feeds

        def deliveries(name: str) -> list[dict[str, Any]]:
            path = f"/v1/subscriptions/{subscriptions[name]}/deliveries"
            items: list[dict[str, Any]] = feeds.call("GET", path, scenario).json()["items"]
            return list(reversed(items))

        def push_until(pusher: WebhookPusher, wanted: list[str]) -> None:
            """Push until each of ``wanted`` has one more attempt in its log."""
            before = {name: len(deliveries(name)) for name in wanted}

            def done() -> bool:
                pusher.push_once()
                return all(len(deliveries(name)) > before[name] for name in wanted)

            assert wait_until(done, 30, interval_s=0.1), {n: deliveries(n) for n in wanted}

        # 1. Feeds as deployed (loopback refused): every target is refused before any connection.
        strict = LoopbackOnly()
        asked_before = dns.asked.count("rebind.scenario.test")
        pusher = WebhookPusher(runtime_feeds, client=httpx.Client(transport=strict))
        push_until(pusher, names)
        pusher.stop()
        connected_before_loopback_allowed = listener.accepted
        asked_at_delivery = dns.asked.count("rebind.scenario.test") - asked_before

        # 2. Loopback allowed (local testing): a closed port, a port that hangs up, and the
        #    metadata address (refused even so) leave the same text in the log.
        loose = LoopbackOnly()
        pusher = WebhookPusher(
            runtime_feeds,
            client=httpx.Client(transport=loose),
            targets=WebhookTargets(allow_loopback=True, resolver=dns),
        )
        push_until(pusher, names)
        pusher.stop()
        failures = {name: deliveries(name) for name in names}

        # 3. The name is public again: the POST goes to the address just checked, under the name.
        dns.answers["rebind.scenario.test"] = [PUBLIC]
        pinned = LoopbackOnly()
        pusher = WebhookPusher(runtime_feeds, client=httpx.Client(transport=pinned))
        push_until(pusher, ["rebind"])
        pusher.stop()
        after = deliveries("rebind")[-1]
    listener.close()

    accepted_at_creation = {url: status for url, status in at_creation.items() if status != 422}
    errors = {entry["error"] for log in failures.values() for entry in log}
    sent_strict = [str(r.url) for r in strict.requests]
    sent_metadata = [str(r.url) for r in loose.requests if r.url.host != "127.0.0.1"]
    loopback_ports = {r.url.port for r in loose.requests if r.url.host == "127.0.0.1"}
    print(
        f"\nrefused at creation: {len(refused_urls) - len(accepted_at_creation)} of {len(refused_urls)}; "
        f"connections to the loopback listener before loopback was allowed: {connected_before_loopback_allowed}; "
        f"requests sent to refused targets at delivery: {len(sent_strict) + len(sent_metadata)}; "
        f"resolutions of a name at its delivery: {asked_at_delivery}; "
        f"distinct log errors (refused target, closed port, hang-up): {len(errors)} {sorted(errors)}"
    )
    assert accepted_at_creation == {}, accepted_at_creation
    assert len(by_name) == 1, by_name
    assert connected_before_loopback_allowed == 0
    assert sent_strict == [] and sent_metadata == [], (sent_strict, sent_metadata)
    assert asked_at_delivery >= 1
    # With loopback allowed, the closed port and the hang-up were really tried...
    assert {closed, listener.port} <= loopback_ports, loopback_ports
    # ...and every failure short of an answer reads alike: refused target, closed port, hang-up.
    assert errors == {UNREACHABLE}, failures
    assert all(entry["http_status"] is None for log in failures.values() for entry in log)
    # 3.: connected to the checked address, the URL's name in Host and in TLS's SNI.
    assert [r.url.host for r in pinned.requests] == [PUBLIC], pinned.requests
    request = pinned.requests[0]
    assert request.headers["host"] == f"rebind.scenario.test:{closed}"
    assert request.extensions.get("sni_hostname") == "rebind.scenario.test"
    assert after["outcome"] == "delivered", after


@contextlib.contextmanager
def _stream(feeds: FeedsPlatform, scenario: Scenario, subscription_id: str) -> Iterator[httpx.Response]:
    with (
        httpx.Client(base_url=feeds.url, timeout=httpx.Timeout(30, read=30)) as client,
        client.stream(
            "GET",
            f"/v1/subscriptions/{subscription_id}/stream",
            headers={"Authorization": f"Bearer {scenario.key}"},
        ) as response,
    ):
        yield response


def test_one_scenario_cannot_take_every_stream_of_a_feeds_process(ingest: IngestPlatform) -> None:
    """Finding 12: the N+1-th stream of one scenario is a 429 problem while another scenario still
    gets one, and a closed stream gives its slot back."""
    cap = 3
    settings = feeds_settings_for_tests(max_streams=8, max_streams_per_scenario=cap)
    with running_feeds(ingest, settings) as feeds:
        dataset = feeds.dataset()
        greedy, other = feeds.scenario("greedy"), feeds.scenario("other")
        feeds.grant(greedy, dataset.id)
        feeds.grant(other, dataset.id)
        greedy_subs = [feeds.subscribe(greedy, dataset.id)["id"] for _ in range(cap + 1)]
        other_sub = feeds.subscribe(other, dataset.id)["id"]
        with contextlib.ExitStack() as held:
            opened = [held.enter_context(_stream(feeds, greedy, sub)) for sub in greedy_subs[:cap]]
            assert [r.status_code for r in opened] == [200] * cap
            with _stream(feeds, greedy, greedy_subs[cap]) as refused:
                status, content_type = refused.status_code, refused.headers.get("content-type")
                problem = json.loads(refused.read()) if content_type == PROBLEM else {}
                retry_after = refused.headers.get("retry-after")
            with _stream(feeds, other, other_sub) as theirs:
                other_status = theirs.status_code
        # Closing the greedy scenario's streams gives their slots back.

        def reopens() -> bool:
            with _stream(feeds, greedy, greedy_subs[cap]) as again:
                return again.status_code == 200

        reopened = wait_until(reopens, 10, interval_s=0.2)
    print(
        f"\nstream {cap + 1} of one scenario: {status} {problem.get('type', '')}; "
        f"another scenario's stream meanwhile: {other_status}"
    )
    assert status == 429 and content_type == PROBLEM, (status, content_type, problem)
    assert problem["type"].endswith("/too-many-streams") and problem["limit"] == cap, problem
    assert retry_after is not None
    assert other_status == 200
    assert reopened
