"""Grants and datasets as ODRL 2.2 policies (issue 18): JSON-LD that parses into RDF, every ODRL
term defined by the ODRL 2.2 vocabulary (tests/data/odrl-2.2, source in its README), the terms
of a grant stated (purpose, fields, duration, masking duties, assigner and assignee), readable by
whoever may read the grant, and linked from the dataset's DCAT-AP description."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rdflib import RDF, Graph, Literal, Namespace, URIRef

from services.catalog.access import context, requests, scenarios
from services.catalog.access.exceptions import NotYourScenario
from services.catalog.access.schemas import AccessRequestApproval, AccessRequestCreate, ScenarioCreate
from services.catalog.access.settings import AccessSettings
from services.catalog.examples import load_examples
from services.catalog.principals import service as principals_service
from services.catalog.schemas import PrincipalCreate
from services.catalog.standards import odrl, service
from services.catalog.standards.dcat import dataset_graph
from services.catalog.standards.model import PlatformLinks
from services.common.auth import Principal, PrincipalKind
from tests.factories import EXAMPLES, access_request_create, scenario_create
from tests.support.catalog_units import CatalogWorld, new_catalog_world

ODRL = Namespace(odrl.ODRL)
VOCABULARY = Path(__file__).resolve().parents[3] / "data" / "odrl-2.2" / "ODRL22.ttl"
LINKS = PlatformLinks("https://data.city.example")
INSPECTIONS = "market.inspections"
APPROVER = Principal("market-approver", PrincipalKind.approver, "M", "market-supervision")
VISIT = Principal("one-stop-visit", PrincipalKind.scenario, "One-stop visit")
OTHER = Principal("ai-community", PrincipalKind.scenario, "AI + community")


@pytest.fixture(scope="module")
def vocabulary() -> set[URIRef]:
    """Every term the ODRL 2.2 ontology defines (a subject with a type) in its namespace."""
    graph = Graph().parse(VOCABULARY, format="turtle")
    return {
        s for s in graph.subjects(RDF.type, None) if isinstance(s, URIRef) and str(s).startswith(odrl.ODRL)
    }


def _graph(policy: dict[str, Any]) -> Graph:
    return Graph().parse(data=json.dumps(policy), format="json-ld")


def _odrl_terms(graph: Graph) -> set[URIRef]:
    """The ODRL IRIs a policy uses: as predicates, as types, as values (actions, operands)."""
    terms = set()
    for s, p, o in graph:
        for node in (s, p, o):
            if isinstance(node, URIRef) and str(node).startswith(odrl.ODRL):
                terms.add(node)
    return terms


def _agreement(**overrides: Any) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "grant_id": "gr-1",
        "scenario_id": "one-stop-visit",
        "dataset_id": INSPECTIONS,
        "owner_department_id": "market-supervision",
        "status": "active",
        "fields": ["inspection_id", "result", "inspector_phone"],
        "masking": {"inspector_phone": {"kind": "partial", "keepPrefix": 3, "keepSuffix": 4}},
        "purpose": "Show residents the inspection results of the shops on their street.",
        "purpose_category": "public_service",
        "valid_from": datetime(2026, 11, 24, 9, tzinfo=UTC),
        "expires_at": datetime(2027, 2, 22, 9, tzinfo=UTC),
        "links": LINKS,
    }
    return odrl.grant_agreement(**{**terms, **overrides})


def test_a_grant_is_an_odrl_agreement_every_term_of_which_odrl_2_2_defines(vocabulary: set[URIRef]) -> None:
    graph = _graph(_agreement())
    used = _odrl_terms(graph)
    assert used - vocabulary == set()
    assert {ODRL.Agreement, ODRL.permission, ODRL.duty, ODRL.anonymize, ODRL.purpose} <= used
    policy = URIRef(odrl.grant_policy_uri(LINKS, "gr-1"))
    assert (policy, RDF.type, ODRL.Agreement) in graph
    assert graph.value(policy, ODRL.assigner) == URIRef(LINKS.publisher("market-supervision"))
    assert graph.value(policy, ODRL.assignee) == URIRef(
        f"{LINKS.base_url}/catalog/v1/scenarios/one-stop-visit"
    )
    assert graph.value(policy, ODRL.target) == URIRef(LINKS.dataset(INSPECTIONS))


def test_the_agreement_states_purpose_fields_duration_and_masking() -> None:
    graph = _graph(_agreement())
    policy = URIRef(odrl.grant_policy_uri(LINKS, "gr-1"))
    permission = graph.value(policy, ODRL.permission)
    assert graph.value(permission, ODRL.action) == ODRL.use
    collection = graph.value(permission, ODRL.target)
    assert (collection, RDF.type, ODRL.AssetCollection) in graph
    assert graph.value(collection, ODRL.partOf) == URIRef(LINKS.dataset(INSPECTIONS))
    fields = {
        str(graph.value(part, URIRef("http://purl.org/dc/terms/title")))
        for part in graph.subjects(ODRL.partOf, collection)
    }
    assert fields == {"inspection_id", "result", "inspector_phone"}
    constraints = {
        (graph.value(c, ODRL.leftOperand), graph.value(c, ODRL.operator), graph.value(c, ODRL.rightOperand))
        for c in graph.objects(permission, ODRL.constraint)
    }
    assert (ODRL.purpose, ODRL.eq, Literal("public_service")) in constraints
    after = Literal("2026-11-24T09:00:00.000Z", datatype=URIRef("http://www.w3.org/2001/XMLSchema#dateTime"))
    assert (ODRL.dateTime, ODRL.gteq, after) in constraints
    assert any(op == ODRL.lt and left == ODRL.dateTime for left, op, _ in constraints)
    [duty] = graph.objects(permission, ODRL.duty)
    assert graph.value(duty, ODRL.action) == ODRL.anonymize
    assert str(graph.value(duty, ODRL.target)).endswith("#field=inspector_phone")
    assert "3 leading and 4 trailing" in str(
        graph.value(duty, URIRef("http://purl.org/dc/terms/description"))
    )


def test_a_revoked_grant_prohibits_use(vocabulary: set[URIRef]) -> None:
    graph = _graph(_agreement(status="revoked"))
    policy = URIRef(odrl.grant_policy_uri(LINKS, "gr-1"))
    assert graph.value(policy, ODRL.permission) is None
    assert graph.value(graph.value(policy, ODRL.prohibition), ODRL.action) == ODRL.use
    assert _odrl_terms(graph) - vocabulary == set()


def test_a_dataset_offer_asks_consent_and_masks_its_sensitive_fields(vocabulary: set[URIRef]) -> None:
    offer = odrl.dataset_offer(
        dataset_id=INSPECTIONS,
        owner_department_id="market-supervision",
        classification="conditional",
        sensitive_fields={"inspector_phone": {"kind": "partial", "keep_prefix": 3, "keep_suffix": 4}},
        links=LINKS,
    )
    graph = _graph(offer)
    assert _odrl_terms(graph) - vocabulary == set()
    policy = URIRef(odrl.dataset_policy_uri(LINKS, INSPECTIONS))
    assert (policy, RDF.type, ODRL.Offer) in graph
    actions = {
        graph.value(duty, ODRL.action)
        for duty in graph.objects(graph.value(policy, ODRL.permission), ODRL.duty)
    }
    assert actions == {ODRL.obtainConsent, ODRL.anonymize}
    open_offer = odrl.dataset_offer(
        dataset_id="transport.bus-arrivals",
        owner_department_id="transport-bureau",
        classification="open",
        sensitive_fields={},
        links=LINKS,
    )
    assert "odrl:duty" not in open_offer["odrl:permission"][0]


def test_the_dcat_description_links_the_offer_as_an_odrl_policy(
    vocabulary: set[URIRef], tmp_path: Path
) -> None:
    world = _world(tmp_path)
    description = service.describe_one(world.catalog.session, dataset_id=INSPECTIONS)
    graph = dataset_graph(description, LINKS)
    policy = graph.value(URIRef(LINKS.dataset(INSPECTIONS)), ODRL.hasPolicy)
    assert policy == URIRef(odrl.dataset_policy_uri(LINKS, INSPECTIONS))
    assert (policy, RDF.type, ODRL.Policy) in graph
    offer = service.dataset_odrl_offer(world.catalog.session, dataset_id=INSPECTIONS, links=LINKS)
    assert offer["@id"] == str(policy)
    assert _odrl_terms(_graph(offer)) - vocabulary == set()


# --- a real grant, read as ODRL by whoever may read it --------------------------------------


@dataclass
class _World:
    catalog: CatalogWorld
    ctx: context.Collaborators


def _world(tmp_path: Path) -> _World:
    catalog = new_catalog_world(tmp_path)
    load_examples(catalog.session, events=catalog.events, directory=EXAMPLES)
    principals_service.add_principal(
        catalog.session,
        events=catalog.events,
        payload=PrincipalCreate(
            id=APPROVER.id, kind="approver", name="M", department_id="market-supervision"
        ),
    )
    ctx = context.Collaborators(catalog.session, catalog.events, catalog.auditor(APPROVER), AccessSettings())
    for scenario in (VISIT, OTHER):
        scenarios.create_scenario(ctx, payload=ScenarioCreate.model_validate(scenario_create(scenario.id)))
    catalog.session.commit()
    return _World(catalog, ctx)


@pytest.fixture
def granted(tmp_path: Path) -> Iterator[tuple[_World, str]]:
    world = _world(tmp_path)
    request = requests.create_access_request(
        context.Collaborators(
            world.catalog.session, world.catalog.events, world.catalog.auditor(VISIT), AccessSettings()
        ),
        actor=VISIT,
        payload=AccessRequestCreate.model_validate(access_request_create()),
    )
    decided = requests.approve_access_request(
        world.ctx,
        actor=APPROVER,
        request_id=request.id,
        approval=AccessRequestApproval.model_validate(
            {"reason": "fits", "fields": ["inspection_id", "result", "inspector_phone"]}
        ),
    )
    world.catalog.session.commit()
    assert decided.grant_id is not None
    try:
        yield world, decided.grant_id
    finally:
        world.catalog.session.close()


def test_a_grant_is_exported_to_whoever_may_read_it(
    granted: tuple[_World, str], vocabulary: set[URIRef]
) -> None:
    world, grant_id = granted
    session = world.catalog.session
    for reader in (VISIT, APPROVER):
        agreement = service.grant_odrl_agreement(
            session, actor=reader, grant_id=grant_id, links=LINKS, audit=world.catalog.auditor(reader)
        )
        graph = _graph(agreement)
        assert _odrl_terms(graph) - vocabulary == set()
        assert agreement["odrl:assignee"] == {"@id": f"{LINKS.base_url}/catalog/v1/scenarios/{VISIT.id}"}
        assert agreement["odrl:permission"][0]["odrl:duty"][0]["odrl:target"]["@id"].endswith(
            "inspector_phone"
        )
    with pytest.raises(NotYourScenario):
        service.grant_odrl_agreement(
            session, actor=OTHER, grant_id=grant_id, links=LINKS, audit=world.catalog.auditor(OTHER)
        )
