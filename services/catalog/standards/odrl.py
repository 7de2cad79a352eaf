"""citybase's usage terms as ODRL 2.2 policies in JSON-LD, for data-space connectors.

Eclipse Dataspace Components, Gaia-X and other connectors read a dataset's usage terms as ODRL
(W3C ODRL Information Model 2.2, vocabulary at ``http://www.w3.org/ns/odrl/2/``). citybase states
two kinds of policy, each at its own address:

- a dataset's **offer** (``odrl:Offer``, ``/catalog/v1/datasets/{id}/odrl``), linked from the
  dataset's DCAT-AP description by ``odrl:hasPolicy``: its owning department (assigner) offers
  the use of the dataset; a ``conditional`` or ``restricted`` dataset asks the assigner's consent
  first (an access request), and every sensitive field is anonymized (masked) unless a grant says
  otherwise;
- each grant as an **agreement** (``odrl:Agreement``, ``/catalog/v1/grants/{id}/odrl``): the
  department (assigner) lets the scenario (assignee) use the granted fields (an
  ``odrl:AssetCollection`` whose parts are the fields, each ``odrl:partOf`` it, the collection
  ``odrl:partOf`` the dataset) for the grant's purpose (``odrl:purpose``) between ``valid_from``
  and ``expires_at`` (``odrl:dateTime``), with an ``odrl:anonymize`` duty per masked field. A
  grant that is suspended, revoked or expired prohibits use instead.

The context is inline (no remote ``@context`` to fetch), so that any JSON-LD processor reads a
policy offline. Terms outside ODRL are Dublin Core (``dct:description``, ``dct:title``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from rdflib import URIRef

from services.catalog.standards.model import PlatformLinks
from services.common.envelope import format_time

ODRL = "http://www.w3.org/ns/odrl/2/"
CONTEXT: dict[str, str] = {
    "odrl": ODRL,
    "dct": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
HAS_POLICY = URIRef(ODRL + "hasPolicy")
POLICY = URIRef(ODRL + "Policy")
OFFER = URIRef(ODRL + "Offer")

_NEEDS_CONSENT = frozenset({"conditional", "restricted"})


def dataset_policy_uri(links: PlatformLinks, dataset_id: str) -> str:
    """Where a dataset's offer is; the IRI DCAT-AP's ``odrl:hasPolicy`` points at."""
    return f"{links.dataset(dataset_id)}/odrl"


def grant_policy_uri(links: PlatformLinks, grant_id: str) -> str:
    return f"{links.base_url}/catalog/v1/grants/{quote(grant_id, safe='')}/odrl"


def _scenario_uri(links: PlatformLinks, scenario_id: str) -> str:
    return f"{links.base_url}/catalog/v1/scenarios/{quote(scenario_id, safe='')}"


def _field_uri(links: PlatformLinks, dataset_id: str, path: str) -> str:
    return f"{links.dataset(dataset_id)}#field={quote(path, safe='.[]')}"


def _ref(iri: str) -> dict[str, str]:
    return {"@id": iri}


def _odrl(term: str) -> dict[str, str]:
    return {"@id": f"odrl:{term}"}


def _constraint(left: str, operator: str, right: Any) -> dict[str, Any]:
    return {"odrl:leftOperand": _odrl(left), "odrl:operator": _odrl(operator), "odrl:rightOperand": right}


def _when(moment: datetime) -> dict[str, str]:
    return {"@value": format_time(moment), "@type": "xsd:dateTime"}


def _masking_words(mask: Mapping[str, Any]) -> str:
    kind = str(mask.get("kind", "redact"))
    if kind == "partial":
        return (
            f"partial: keep {mask.get('keep_prefix', mask.get('keepPrefix', 3))} leading and "
            f"{mask.get('keep_suffix', mask.get('keepSuffix', 4))} trailing characters"
        )
    if kind == "generalize" and mask.get("precision") is not None:
        return f"generalize to {mask['precision']} decimal places"
    return {"hash": "hash: a keyed hash, the same within one grant", "redact": "redact: left out"}.get(
        kind, kind
    )


def _anonymize_duties(
    links: PlatformLinks, dataset_id: str, masking: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One ``odrl:anonymize`` duty per masked field, saying how it is masked."""
    return [
        {
            "odrl:action": _odrl("anonymize"),
            "odrl:target": _ref(_field_uri(links, dataset_id, path)),
            "dct:description": _masking_words(mask if isinstance(mask, Mapping) else {"kind": mask}),
        }
        for path, mask in sorted(masking.items())
    ]


def dataset_offer(
    *,
    dataset_id: str,
    owner_department_id: str,
    classification: str,
    sensitive_fields: Mapping[str, Any],
    links: PlatformLinks,
) -> dict[str, Any]:
    """The dataset's usage terms as an ``odrl:Offer`` (JSON-LD)."""
    uri = dataset_policy_uri(links, dataset_id)
    duties = _anonymize_duties(links, dataset_id, sensitive_fields)
    if classification in _NEEDS_CONSENT:
        duties.insert(
            0,
            {
                "odrl:action": _odrl("obtainConsent"),
                "odrl:consentingParty": _ref(links.publisher(owner_department_id)),
                "dct:description": "an access request with a purpose and fields, approved by the "
                "owning department, becomes a grant",
            },
        )
    permission: dict[str, Any] = {"odrl:action": _odrl("use"), "odrl:target": _ref(links.dataset(dataset_id))}
    if duties:
        permission["odrl:duty"] = duties
    return {
        "@context": CONTEXT,
        "@id": uri,
        "@type": "odrl:Offer",
        "odrl:uid": _ref(uri),
        "dct:title": f"Usage terms of {dataset_id} ({classification})",
        "odrl:assigner": _ref(links.publisher(owner_department_id)),
        "odrl:target": _ref(links.dataset(dataset_id)),
        "odrl:permission": [permission],
    }


def grant_agreement(
    *,
    grant_id: str,
    scenario_id: str,
    dataset_id: str,
    owner_department_id: str,
    status: str,
    fields: list[str],
    masking: Mapping[str, Any],
    purpose: str,
    purpose_category: str,
    valid_from: datetime,
    expires_at: datetime,
    links: PlatformLinks,
) -> dict[str, Any]:
    """One grant as an ``odrl:Agreement`` (JSON-LD); see the module for what each part says."""
    uri = grant_policy_uri(links, grant_id)
    dataset = links.dataset(dataset_id)
    granted_fields = {
        "@id": f"{uri}#fields",
        "@type": "odrl:AssetCollection",
        "odrl:partOf": _ref(dataset),
        "@reverse": {
            "odrl:partOf": [
                {"@id": _field_uri(links, dataset_id, field), "dct:title": field} for field in sorted(fields)
            ]
        },
    }
    rule: dict[str, Any] = {
        "odrl:action": _odrl("use"),
        "odrl:target": granted_fields,
        "odrl:constraint": [
            _constraint("purpose", "eq", purpose_category),
            _constraint("dateTime", "gteq", _when(valid_from)),
            _constraint("dateTime", "lt", _when(expires_at)),
        ],
    }
    duties = _anonymize_duties(links, dataset_id, masking)
    active = status == "active"
    if active and duties:
        rule["odrl:duty"] = duties
    policy: dict[str, Any] = {
        "@context": CONTEXT,
        "@id": uri,
        "@type": "odrl:Agreement",
        "odrl:uid": _ref(uri),
        "dct:title": f"Grant {grant_id}: {scenario_id} uses {dataset_id} ({status})",
        "dct:description": purpose,
        "odrl:inheritFrom": _ref(dataset_policy_uri(links, dataset_id)),
        "odrl:assigner": _ref(links.publisher(owner_department_id)),
        "odrl:assignee": _ref(_scenario_uri(links, scenario_id)),
        "odrl:target": _ref(dataset),
    }
    policy["odrl:permission" if active else "odrl:prohibition"] = [rule]
    return policy
