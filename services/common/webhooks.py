"""Webhooks, as every service that pushes to a URL chosen by its caller does them.

A webhook URL is chosen by a caller (a scenario's feed, a need's follower), and the service POSTs
to it from inside the platform: without a check, a caller could make the service reach the cloud's
metadata service (169.254.169.254), the databases and brokers of the private network, or the
service's own loopback ports, and read the delivery log as a port scanner. So:

- at creation, the URL must be https (plain http only to ``webhook_allow_http_hosts``) and its host
  must be, or resolve to, public addresses only (:meth:`WebhookTargets.check_url`);
- at every delivery the host is resolved again and every address checked, and the POST goes to the
  address that was checked (the URL's host stays in ``Host`` and in TLS's SNI and certificate
  check): a name that resolved to a public address at creation and to 127.0.0.1 since (DNS
  rebinding) is refused, and so is a name that answers with a public and a private address
  (:meth:`WebhookTargets.target`, :meth:`WebhookSender.post`);
- loopback is allowed only with ``webhook_allow_loopback`` (a receiver on the same machine, in
  local tests), chosen private networks only with ``webhook_allow_networks``; link-local (the
  metadata services) and unspecified addresses never.

Each push is signed like Stripe's and GitHub's webhooks: ``CityBase-Signature: t=<unix
seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (:func:`sign`), with a secret shown once to
the caller. A delivery log tells the caller what its receiver answered (``HTTP 503``) and, for
anything short of an answer, one and the same text (:data:`UNREACHABLE`): a refused connection, a
closed port, a reset, a timeout, a TLS failure and a refused address all read alike, so that the
log is no scanner of the network the service runs in. The operators' log keeps the precise cause.

The resolver is a collaborator (``socket.getaddrinfo`` in production), so that tests check all of
this without sending a packet anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from services.common.i18n import N_, Sentence
from services.common.problems import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
"""host, port -> the addresses a connection to them would use."""

SIGNATURE_HEADER = "CityBase-Signature"
UNREACHABLE = "no HTTP answer from the webhook URL (not reachable, refused, or timed out)"
"""The delivery log's error for every failure short of an HTTP answer."""

_PUBLIC_ONLY = N_("the webhook's host must resolve to public addresses only")


class InvalidWebhook(InvalidRequest):
    slug, title = "invalid-webhook", "The webhook URL is not allowed"


class WebhookSettings(Protocol):
    """The address settings of a service's webhooks (feeds', the catalog's needs), by the same names."""

    @property
    def webhook_allow_http_hosts(self) -> list[str]: ...

    @property
    def webhook_allow_loopback(self) -> bool: ...

    @property
    def webhook_allow_networks(self) -> list[str]: ...


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def backoff_s(failures: int, first_s: float, max_s: float) -> float:
    """How long to wait before the next attempt after ``failures`` failures in a row: ``first_s``,
    doubling with each failure, at most ``max_s``."""
    return float(min(max_s, first_s * 2 ** max(0, failures - 1)))


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for a TCP connection to ``host:port``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) goes
    except ValueError:
        return None


def address_kind(address: Address) -> str | None:
    """What kind of non-public address this is (``loopback``, ``link-local``, ...), or None when it
    is a public (globally routable) unicast address. An IPv4 address inside IPv6 (mapped, 6to4) is
    judged as the IPv4 address it reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            return address_kind(inner)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "shared or reserved"
    return None


class TargetRefused(Exception):
    """A delivery's target is not allowed (its host resolves to a refused address) or cannot be
    resolved. The message is for the operators' log; the caller sees the same text as for any
    address the service could not reach."""


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL with the address checked for this delivery: connect there, nowhere else."""

    url: str
    host: str
    address: str

    @property
    def host_is_address(self) -> bool:
        return _address(self.host) is not None


class WebhookTargets:
    """The policy of webhook addresses, with its resolver."""

    def __init__(
        self,
        *,
        allow_http_hosts: Iterable[str] = (),
        allow_loopback: bool = False,
        allow_networks: Iterable[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        self.allow_http_hosts = frozenset(host.lower() for host in allow_http_hosts)
        self.allow_loopback = allow_loopback
        self.allow_networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(text, strict=False) for text in allow_networks
        )
        self.resolver = resolver

    @classmethod
    def of(cls, settings: WebhookSettings, resolver: Resolver = system_resolver) -> WebhookTargets:
        return cls(
            allow_http_hosts=settings.webhook_allow_http_hosts,
            allow_loopback=settings.webhook_allow_loopback,
            allow_networks=settings.webhook_allow_networks,
            resolver=resolver,
        )

    def refusal(self, address: Address) -> Sentence | None:
        """Why the service may not connect to ``address``, or None when it may."""
        kind = address_kind(address)
        if kind is None:
            return None
        if kind == "loopback" and self.allow_loopback:
            return None
        if kind in {"private", "shared or reserved"} and any(address in n for n in self.allow_networks):
            return None
        return Sentence(N_("%(address)s is a %(kind)s address"), address=str(address), kind=kind)

    def check_url(self, url: str, *, path: str = "/webhook/url") -> str:
        """The URL, if a webhook may be created with it; otherwise the 422 that says why, at the
        body's ``path``.

        An address in the URL is named in the refusal; for a name, the refusal does not say what
        it resolved to (nor whether it resolved), so that the check is no oracle of the platform's
        own DNS."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise InvalidWebhook(Sentence(N_("the webhook URL has no host")), path=path)
        try:
            parts.port  # noqa: B018 - urlsplit checks the port when it is read
        except ValueError:
            raise InvalidWebhook(
                Sentence(N_("the webhook URL's port is not a port number")), path=path
            ) from None
        if parts.scheme != "https" and not (parts.scheme == "http" and host in self.allow_http_hosts):
            allowed = ", ".join(sorted(self.allow_http_hosts)) or "no host"
            raise InvalidWebhook(
                Sentence(
                    N_("a webhook must be an https URL (plain http only for %(allowed)s)"), allowed=allowed
                ),
                path=path,
            )
        literal = _address(host)
        refusal = self.refusal(literal) if literal is not None else None
        if refusal is not None:
            raise InvalidWebhook(
                Sentence(N_("%(refusal)s; webhooks reach public addresses only"), refusal=refusal),
                path=path,
            )
        try:
            self.target(url)
        except TargetRefused:
            raise InvalidWebhook(Sentence(_PUBLIC_ONLY), path=path) from None
        return url

    def target(self, url: str) -> Target:
        """The address to deliver ``url`` to now: resolved again and checked, every time.

        Raises :class:`TargetRefused` when the host does not resolve or any of its addresses is
        refused (a name answering with a public and a private address is refused whole)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            raise TargetRefused(f"{url!r} has no valid port") from error
        literal = _address(host)
        addresses = [literal] if literal is not None else self._resolve(host, port)
        for address in addresses:
            refusal = self.refusal(address)
            if refusal is not None:
                raise TargetRefused(f"{host} resolves to {refusal}")
        return Target(url=url, host=host, address=str(addresses[0]))

    def _resolve(self, host: str, port: int) -> list[Address]:
        try:
            answers = self.resolver(host, port)
        except (OSError, UnicodeError) as error:
            raise TargetRefused(f"{host} does not resolve: {error}") from error
        addresses = [a for a in (_address(text) for text in answers) if a is not None]
        if not addresses:
            raise TargetRefused(f"{host} resolves to no address")
        return addresses


class WebhookSender:
    """POSTs to webhook URLs, each time to the address its policy checked just then."""

    def __init__(
        self, targets: WebhookTargets, *, timeout_s: float, client: httpx.Client | None = None
    ) -> None:
        self.targets = targets
        # No redirects (a 30x could point inside the network) and no kept connections: a connection
        # is opened to the address checked for this delivery, and one kept for an address must not
        # carry a request for another name served there.
        self._client = client or httpx.Client(
            timeout=timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST to the address of ``url`` checked now; the answer's status.

        Raises :class:`TargetRefused` for an address the policy refuses and :class:`httpx.HTTPError`
        for anything short of an answer."""
        target = self.targets.target(url)
        pinned = httpx.URL(url)
        extensions: dict[str, object] = {}
        if not target.host_is_address:
            headers = {**headers, "Host": pinned.netloc.decode("ascii")}
            pinned = pinned.copy_with(host=target.address)
            if pinned.scheme == "https":
                extensions["sni_hostname"] = target.host  # TLS names and verifies the URL's host
        response = self._client.post(pinned, content=body, headers=headers, extensions=extensions)
        return response.status_code

    def close(self) -> None:
        self._client.close()
