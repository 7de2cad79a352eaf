"""The kernel's webhook POST, without a network: a mock transport stands for the receiver and a
fake resolver for DNS."""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from services.common.webhooks import TargetRefused, WebhookSender, WebhookTargets, backoff_s, sign

ANSWERS = {"hooks.example.cn": ["93.184.215.14"]}


def test_the_post_goes_to_the_address_checked_now_with_the_name_in_host_and_sni() -> None:
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    targets = WebhookTargets(resolver=lambda host, port: ANSWERS[host])
    sender = WebhookSender(
        targets, timeout_s=1.0, client=httpx.Client(transport=httpx.MockTransport(receiver))
    )
    try:
        assert sender.post("https://hooks.example.cn:8443/needs", b"{}", {"X-Test": "1"}) == 204
        ANSWERS["hooks.example.cn"] = ["10.0.0.9"]  # rebinding: refused before any connection
        with pytest.raises(TargetRefused):
            sender.post("https://hooks.example.cn:8443/needs", b"{}", {})
    finally:
        ANSWERS["hooks.example.cn"] = ["93.184.215.14"]
        sender.close()
    [request] = seen
    assert (request.url.host, request.url.port, request.url.path) == ("93.184.215.14", 8443, "/needs")
    assert request.headers["Host"] == "hooks.example.cn:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.cn"


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    assert [backoff_s(failures, 1.0, 5.0) for failures in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_the_signature_is_an_hmac_of_the_timestamp_and_the_body() -> None:
    mac = hmac.new(b"whsec_k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert sign("whsec_k", 1700000000, b'{"a":1}') == f"t=1700000000,v1={mac}"
