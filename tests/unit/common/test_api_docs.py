"""The API docs pages of every service load their scripts and styles from the service itself.

FastAPI's default pages fetch Swagger UI and ReDoc from cdn.jsdelivr.net and are blank offline;
citybase serves both from the ``fastapi-offline`` package under ``docs-assets/``, with relative
URLs so the pages work under ``/<service>/docs`` of ``citybase up`` as under ``/docs``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citybase.platform import SERVICE_FACTORIES, create_platform_app
from tests.factories import embedded_settings

SERVICES = sorted(SERVICE_FACTORIES)
PAGES = ("docs", "redoc")
BASE = "http://testserver"


class _Assets(HTMLParser):
    """The scripts, stylesheets and icons a page loads, and the OpenAPI document it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.refs.append(("script", attributes["src"] or ""))
        elif tag == "link" and attributes.get("href"):
            rel = attributes.get("rel") or "link"
            self.refs.append(("icon" if "icon" in rel.split() else rel, attributes["href"] or ""))
        elif tag == "redoc" and attributes.get("spec-url"):
            self.refs.append(("openapi", attributes["spec-url"] or ""))

    def handle_data(self, data: str) -> None:
        # Swagger UI reads its document from the `url:` of its inline set-up script.
        for url in re.findall(r"\burl:\s*'([^']+)'", data):
            self.refs.append(("openapi", url))


EXPECTED_TYPES = {"script": "javascript", "stylesheet": "text/css", "icon": "image/", "openapi": "json"}


def _assert_docs_are_self_served(client: TestClient, prefix: str) -> None:
    for page in PAGES:
        page_url = f"{BASE}{prefix}/{page}"
        response = client.get(page_url)
        assert response.status_code == 200, page_url
        assert "cdn.jsdelivr.net" not in response.text
        parser = _Assets()
        parser.feed(response.text)
        kinds = {kind for kind, _ in parser.refs}
        assert {"script", "openapi"} <= kinds, (page_url, parser.refs)
        if page == "docs":
            assert "stylesheet" in kinds, parser.refs
        for kind, ref in parser.refs:
            assert "://" not in ref and not ref.startswith("//"), f"{page_url} loads {ref} from another host"
            url = urljoin(page_url, ref)
            assert urlsplit(url).netloc == "testserver"
            asset = client.get(url)
            assert asset.status_code == 200, f"{page_url}: {ref} -> {url}: {asset.status_code}"
            assert EXPECTED_TYPES[kind] in asset.headers["content-type"], (url, asset.headers["content-type"])


def _service_app(service: str, tmp_path: Path) -> FastAPI:
    return SERVICE_FACTORIES[service](embedded_settings(tmp_path))


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_serves_its_api_docs_without_a_cdn(service: str, tmp_path: Path) -> None:
    _assert_docs_are_self_served(TestClient(_service_app(service, tmp_path)), "")


def test_the_platform_serves_each_services_api_docs_without_a_cdn(tmp_path: Path) -> None:
    client = TestClient(create_platform_app(embedded_settings(tmp_path)))
    for service in SERVICES:
        _assert_docs_are_self_served(client, f"/{service}")
