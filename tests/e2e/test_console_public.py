"""The console's public pages: the open data catalog and each public dataset's record, without a
login, with facet counts and schema.org JSON-LD for search engines; nothing a department hid."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.platform import Platform, in_process

HIDDEN = "health.outpatient-visits"
JSONLD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with in_process(tmp_path_factory.mktemp("public-console"), key_name="public") as running:
        running.ok("PATCH", f"/catalog/v1/datasets/{HIDDEN}", json={"publicly_listed": False})
        yield running


def _visitor(platform: Platform) -> TestClient:
    client = platform.client
    assert isinstance(client, TestClient)
    client.cookies.clear()
    return client


def _jsonld(page: str) -> dict[str, Any]:
    found = JSONLD.findall(page)
    assert len(found) == 1, "one JSON-LD block per page"
    described: dict[str, Any] = json.loads(found[0])
    assert described["@context"] == "https://schema.org"
    return described


def test_a_visitor_without_a_login_browses_the_public_catalog_with_its_facets(platform: Platform) -> None:
    client = _visitor(platform)

    page = client.get("/console/public/datasets", follow_redirects=False)

    assert page.status_code == 200, page.text
    assert 'id="facets"' in page.text and 'id="facet-domain"' in page.text
    assert "transport.bus-arrivals" in page.text
    assert HIDDEN not in page.text
    catalog = _jsonld(page.text)
    assert catalog["@type"] == "DataCatalog"
    assert HIDDEN not in {d["identifier"] for d in catalog["dataset"]}
    assert len(catalog["dataset"]) == 4 and all(d["description"] for d in catalog["dataset"])
    # A facet link narrows the query; the chosen value links back to the wider one.
    narrowed = client.get("/console/public/datasets?domain=transport")
    assert narrowed.status_code == 200
    assert [d["identifier"] for d in _jsonld(narrowed.text)["dataset"]] == ["transport.bus-arrivals"]
    assert 'href="/console/public/datasets?"' in narrowed.text.replace(' aria-current="true"', "")


def test_a_public_dataset_page_carries_schema_org_dataset_json_ld(platform: Platform) -> None:
    client = _visitor(platform)

    page = client.get("/console/public/datasets/transport.bus-arrivals", follow_redirects=False)

    assert page.status_code == 200, page.text
    described = _jsonld(page.text)
    assert described["@type"] == "Dataset"
    assert described["identifier"] == "transport.bus-arrivals"
    assert described["url"] == "http://testserver/console/public/datasets/transport.bus-arrivals"
    assert described["name"] and described["description"] and described["keywords"]
    assert described["publisher"]["@type"] == "GovernmentOrganization" and described["publisher"]["name"]
    assert described["version"]
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_a_hidden_or_unknown_dataset_page_asks_for_a_login(platform: Platform) -> None:
    client = _visitor(platform)
    for dataset_id in (HIDDEN, "transport.nothing"):
        page = client.get(f"/console/public/datasets/{dataset_id}", follow_redirects=False)
        assert page.status_code == 303, dataset_id
        assert page.headers["location"].startswith("/console/login?next=")


def test_the_logged_in_catalog_shows_the_facet_counts_of_the_query(platform: Platform) -> None:
    client = _visitor(platform)
    login = client.post("/console/login", data={"key": platform.admin_key}, follow_redirects=False)
    assert login.status_code == 303
    page = client.get("/console/datasets?classification=conditional")
    assert page.status_code == 200
    assert 'id="facet-classification"' in page.text
    counts = re.findall(
        r'<li><a href="[^"]*" aria-current="true"[^>]*>([^<]+)</a><span class="count">(\d+)</span>', page.text
    )
    assert counts and all(count != "0" for _, count in counts)
    assert HIDDEN in client.get("/console/datasets").text  # a key sees what a department hid from visitors
    client.cookies.clear()


def test_an_open_dataset_page_links_its_snapshot_download_and_a_conditional_one_does_not(
    platform: Platform,
) -> None:
    client = _visitor(platform)

    page = client.get("/console/public/datasets/transport.bus-arrivals")
    chinese = client.get(
        "/console/public/datasets/transport.bus-arrivals", headers={"Accept-Language": "zh-CN"}
    )
    conditional = client.get("/console/public/datasets/market.inspections")

    assert page.status_code == chinese.status_code == conditional.status_code == 200
    links = dict(re.findall(r'<a href="([^"]+)" id="download-(\w+)" download>', page.text))
    assert set(links.values()) == {"ndjson", "csv"}
    for link, form in links.items():
        assert link == f"/feeds/v1/open/transport.bus-arrivals/snapshot?format={form}"
        answer = client.get(link)  # followed as a visitor: no key, no cookie
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-disposition"].endswith(f'snapshot.{form}"')
    assert "Download its latest records" in page.text
    assert "无需密钥下载其最新数据记录" in chinese.text and 'id="download-csv"' in chinese.text
    assert 'id="download' not in conditional.text
