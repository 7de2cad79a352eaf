"""The address rules of webhooks, without a network: a fake resolver stands for DNS."""

from __future__ import annotations

import socket

import pytest

from services.common.webhooks import TargetRefused, WebhookTargets
from services.feeds.exceptions import InvalidWebhook

ANSWERS = {
    "public.test": ["93.184.215.14"],
    "intranet.test": ["10.20.3.4"],
    "loopback.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["93.184.215.14", "192.168.0.1"],
}


def resolve(host: str, port: int) -> list[str]:
    if host not in ANSWERS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return ANSWERS[host]


@pytest.mark.parametrize(
    ("url", "allowed_by_default", "with_loopback", "with_intranet"),
    [
        ("https://public.test/hook", True, True, True),
        ("https://93.184.215.14:8443/hook", True, True, True),
        ("https://loopback.test/hook", False, True, False),
        ("https://127.0.0.1:9000/hook", False, True, False),
        ("https://[::1]/hook", False, True, False),
        ("https://[::ffff:127.0.0.1]/hook", False, True, False),
        ("https://intranet.test/hook", False, False, True),
        ("https://10.20.0.9/hook", False, False, True),
        ("https://10.21.0.9/hook", False, False, False),
        ("https://metadata.test/hook", False, False, False),
        ("https://169.254.169.254/hook", False, False, False),
        ("https://[fe80::1]/hook", False, False, False),
        ("https://0.0.0.0/hook", False, False, False),
        ("https://mixed.test/hook", False, False, False),
        ("https://unknown.test/hook", False, False, False),
    ],
)
def test_only_public_addresses_unless_loopback_or_a_network_is_allowed(
    url: str, allowed_by_default: bool, with_loopback: bool, with_intranet: bool
) -> None:
    policies = {
        "default": (WebhookTargets(resolver=resolve), allowed_by_default),
        "loopback": (WebhookTargets(allow_loopback=True, resolver=resolve), with_loopback),
        "intranet": (WebhookTargets(allow_networks=["10.20.0.0/16"], resolver=resolve), with_intranet),
    }
    for name, (targets, allowed) in policies.items():
        if allowed:
            assert targets.check_url(url) == url, name
            assert targets.target(url).address, name
        else:
            with pytest.raises(InvalidWebhook):
                targets.check_url(url)
            with pytest.raises(TargetRefused):
                targets.target(url)


def test_plain_http_only_to_the_listed_hosts() -> None:
    targets = WebhookTargets(allow_http_hosts=["127.0.0.1"], allow_loopback=True, resolver=resolve)
    assert targets.check_url("http://127.0.0.1:8080/hook")
    with pytest.raises(InvalidWebhook, match="https"):
        targets.check_url("http://public.test/hook")
    with pytest.raises(InvalidWebhook, match="port"):
        targets.check_url("https://public.test:99999/hook")
