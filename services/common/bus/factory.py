"""Build the bus named by a URL: ``embedded:///path/to/bus.db`` or ``kafka://host:port[,host:port]``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from services.common.bus.base import Bus


def bus_from_url(url: str, *, client_id: str = "citybase") -> Bus:
    parts = urlsplit(url)
    if parts.scheme == "embedded":
        from services.common.bus.embedded import EmbeddedBus

        return EmbeddedBus(Path(parts.path))
    if parts.scheme == "kafka":
        from services.common.bus.kafka import KafkaBus

        servers = [server for server in parts.netloc.split(",") if server]
        if not servers:
            raise ValueError(f"kafka bus URL needs host:port, got {url!r}")
        return KafkaBus(servers, client_id=client_id)
    raise ValueError(f"unknown bus URL scheme {parts.scheme!r} in {url!r}: use embedded:// or kafka://")
