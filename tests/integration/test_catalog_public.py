"""Reading the catalog without a key: the public records of published datasets, harvested page by
page as DCAT-AP, and nothing a department hid or has not published; each client address rate-limited."""

from __future__ import annotations

import rdflib
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF

from services.catalog import examples as catalog_examples
from services.catalog.runtime import CatalogRuntime
from services.catalog.standards.dcat_vocabularies import HYDRA
from services.common import db
from services.common.public_reads import PublicRateLimit, PublicReadSettings
from tests.factories import EXAMPLES
from tests.support.dcat import SHAPE_FILES, SHAPES_DIR, violations
from tests.support.services import CatalogHarness

PROBLEM = "application/problem+json"
HIDDEN = "health.outpatient-visits"


def _load_examples(catalog: CatalogHarness) -> list[dict[str, object]]:
    with db.unit_of_work(catalog.runtime.sessions) as session:
        catalog_examples.load_examples(
            session, events=catalog.runtime.service_as(CatalogRuntime).events, directory=EXAMPLES
        )
    listed = catalog.call("GET", "/v1/datasets").json()["items"]
    assert len(listed) == 5 and all(d["status"] == "active" and d["publicly_listed"] for d in listed)
    return listed


def _hide(catalog: CatalogHarness, dataset_id: str) -> None:
    answer = catalog.call("PATCH", f"/v1/datasets/{dataset_id}", json={"publicly_listed": False})
    assert answer.status_code == 200, answer.text
    assert answer.json()["publicly_listed"] is False


def _draft(catalog: CatalogHarness) -> str:
    answer = catalog.call(
        "POST",
        "/v1/datasets",
        json={"id": "transport.tram-plans", "title": "Tram plans", "owner_department_id": "transport-bureau"},
    )
    assert answer.status_code == 201, answer.text
    return "transport.tram-plans"


def test_without_a_key_the_search_and_the_dataset_page_show_the_public_records_only(
    catalog: CatalogHarness,
) -> None:
    listed = _load_examples(catalog)
    _hide(catalog, HIDDEN)
    draft = _draft(catalog)
    public = sorted(d["id"] for d in listed if d["id"] != HIDDEN)

    anonymous = catalog.client.get("/v1/datasets", params={"facets": "true"})
    assert anonymous.status_code == 200, anonymous.text
    assert [d["id"] for d in anonymous.json()["items"]] == public
    facets = anonymous.json()["facets"]
    assert sum(c["count"] for c in facets["domain"]) == len(public)
    assert "health" not in {c["value"] for c in facets["domain"]}
    assert facets["status"] == [{"value": "active", "count": len(public)}]
    keyed = catalog.call("GET", "/v1/datasets", params={"facets": "true"}).json()
    assert {d["id"] for d in keyed["items"]} == {*public, HIDDEN, draft}
    assert {"value": "draft", "count": 1} in keyed["facets"]["status"]

    page = catalog.client.get(f"/v1/datasets/{public[0]}")
    assert page.status_code == 200 and page.json()["title"]
    # Hidden, draft and unknown: the same refusal, so a reader cannot tell which it met.
    refusals = [catalog.client.get(f"/v1/datasets/{d}") for d in (HIDDEN, draft, "transport.nothing")]
    for refused in refusals:
        assert refused.status_code == 401
        assert refused.headers["content-type"] == PROBLEM
    assert len({r.json()["detail"].split("'")[2] for r in refusals}) == 1
    for path in (
        f"/v1/datasets/{HIDDEN}/dcat",
        f"/v1/datasets/{HIDDEN}/asyncapi",
        f"/v1/datasets/{draft}/dcat",
    ):
        refused = catalog.client.get(path)
        assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM, path
    assert catalog.call("GET", f"/v1/datasets/{HIDDEN}").status_code == 200
    assert catalog.client.get(f"/v1/datasets/{public[0]}/dcat").status_code == 200
    asyncapi = catalog.client.get("/v1/asyncapi").json()
    assert not [name for name in asyncapi["channels"] if "outpatient" in name]


def test_a_wrong_key_is_refused_and_never_read_as_no_key(catalog: CatalogHarness) -> None:
    _load_examples(catalog)
    for path in ("/v1/datasets", "/v1/catalog", "/v1/datasets/transport.bus-arrivals"):
        answer = catalog.client.get(path, headers={"Authorization": "Bearer cbk_00000000_wrong"})
        assert answer.status_code == 401 and answer.headers["content-type"] == PROBLEM, path


def _walk(catalog: CatalogHarness, first: str, fmt: str) -> tuple[list[rdflib.Graph], int]:
    """Follow hydra:next from ``first`` as a harvester does; the pages and the total announced."""
    pages: list[rdflib.Graph] = []
    following: str | None = first
    totals = set()
    while following is not None:
        assert following.startswith("http://testserver/catalog/"), following
        answer = catalog.client.get(following.removeprefix("http://testserver/catalog"))
        assert answer.status_code == 200, answer.text
        graph = rdflib.Graph().parse(data=answer.text, format=fmt)
        pages.append(graph)
        view = graph.value(rdflib.URIRef("http://testserver/catalog/v1/catalog"), HYDRA.view)
        assert view is not None and (view, RDF.type, HYDRA.PartialCollectionView) in graph
        totals.add(int(graph.value(rdflib.URIRef("http://testserver/catalog/v1/catalog"), HYDRA.totalItems)))
        following = str(graph.value(view, HYDRA.next)) if graph.value(view, HYDRA.next) else None
        assert len(pages) < 20, "the walk does not end"
    assert len(totals) == 1
    return pages, totals.pop()


def test_a_harvester_walks_every_page_of_the_public_catalog_without_a_key(catalog: CatalogHarness) -> None:
    listed = _load_examples(catalog)
    _hide(catalog, HIDDEN)
    _draft(catalog)
    public = {f"http://testserver/catalog/v1/datasets/{d['id']}" for d in listed if d["id"] != HIDDEN}

    for fmt, query in (("turtle", "&format=turtle"), ("json-ld", "")):
        pages, total = _walk(catalog, f"http://testserver/catalog/v1/catalog?limit=2{query}", fmt)
        assert len(pages) == 2 and total == len(public) == 4
        seen = [str(s) for page in pages for s in page.subjects(RDF.type, DCAT.Dataset)]
        assert sorted(seen) == sorted(public)  # each public record once, none other
        for page in pages:
            for dataset in page.subjects(RDF.type, DCAT.Dataset):
                assert (rdflib.URIRef("http://testserver/catalog/v1/catalog"), DCAT.dataset, dataset) in page
    whole = rdflib.Graph().parse(data=catalog.client.get("/v1/catalog?format=turtle").text, format="turtle")
    assert {str(s) for s in whole.subjects(RDF.type, DCAT.Dataset)} == public
    keyed = rdflib.Graph().parse(data=catalog.call("GET", "/v1/catalog?format=turtle").text, format="turtle")
    assert len(set(keyed.subjects(RDF.type, DCAT.Dataset))) == 6

    # A page is still a DCAT-AP catalog: the Hydra statements break none of the official shapes.
    shapes = rdflib.Graph()
    for name in SHAPE_FILES:
        shapes.parse(SHAPES_DIR / name, format="turtle")
    first = catalog.client.get("/v1/catalog", params={"limit": 2, "format": "turtle"}).text
    assert violations(rdflib.Graph().parse(data=first, format="turtle"), shapes) == []

    bad = catalog.client.get("/v1/catalog", params={"limit": 2, "cursor": "not a cursor!"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM


def test_the_publishers_the_public_catalog_names_answer_without_a_key(catalog: CatalogHarness) -> None:
    _load_examples(catalog)
    graph = rdflib.Graph().parse(data=catalog.client.get("/v1/catalog?format=turtle").text, format="turtle")
    departments = {str(p) for p in graph.objects(None, DCTERMS.publisher) if "#" not in str(p)}
    assert len(departments) == 5
    for uri in departments:
        answer = catalog.client.get(
            uri.removeprefix("http://testserver/catalog"), headers={"Accept": "text/turtle"}
        )
        assert answer.status_code == 200, answer.text
        agent = rdflib.Graph().parse(data=answer.text, format="turtle")
        assert (rdflib.URIRef(uri), RDF.type, FOAF.Agent) in agent


def test_a_client_address_without_a_key_is_limited_with_retry_after(catalog: CatalogHarness) -> None:
    _load_examples(catalog)
    runtime = catalog.runtime.service_as(CatalogRuntime)
    runtime.public_reads = PublicRateLimit(PublicReadSettings(requests_per_minute=6, burst=3))

    answers = [catalog.client.get("/v1/datasets") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.headers["content-type"] == PROBLEM
    assert limited.json()["type"].endswith("too-many-requests")
    assert 1 <= int(limited.headers["retry-after"]) <= 10
    # A caller with a key is not counted against the address.
    assert catalog.call("GET", "/v1/datasets").status_code == 200
    assert catalog.client.get("/v1/catalog").status_code == 429


def test_the_contract_of_a_public_record_is_read_without_a_key_and_no_other(catalog: CatalogHarness) -> None:
    listed = _load_examples(catalog)
    _hide(catalog, HIDDEN)
    public = next(d["id"] for d in listed if d["id"] != HIDDEN)

    document = catalog.client.get(f"/v1/datasets/{public}/contract")
    assert document.status_code == 200, document.text
    assert document.text == catalog.call("GET", f"/v1/datasets/{public}/contract").text
    versions = catalog.client.get(f"/v1/datasets/{public}/contract-versions")
    assert versions.status_code == 200 and versions.json()
    version = versions.json()[-1]["version"]
    one = catalog.client.get(f"/v1/datasets/{public}/contract-versions/{version}")
    assert one.status_code == 200 and one.json()["version"] == version
    # A hidden dataset's contract, with its sensitive fields and their masks, stays behind a key;
    # refused as its record is, so a reader cannot tell hidden from unknown.
    for path in (
        f"/v1/datasets/{HIDDEN}/contract",
        f"/v1/datasets/{HIDDEN}/contract-versions",
        f"/v1/datasets/{HIDDEN}/contract-versions/{version}",
        "/v1/datasets/transport.nothing/contract",
    ):
        refused = catalog.client.get(path)
        assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM, path
    assert catalog.call("GET", f"/v1/datasets/{HIDDEN}/contract").status_code == 200
    # Checking a draft against the contract is a publisher's tool: it still needs a key.
    check = catalog.client.post(f"/v1/datasets/{public}/contract-versions/check", content=document.text)
    assert check.status_code == 401
