"""Which dataset an ODCS contract describes: its dataset id, read off the document as submitted.

ODCS leaves a contract's ``id`` free (the examples of the standard use UUIDs and plain words),
while a citybase dataset id is ``<domain>.<name>`` in lower case. The dataset id is, in order:

1. the contract's ``id``, when it already is a dataset id (``transport.bus-arrivals``); an id
   that reads as one (one dot, no spaces) but does not fit is refused, not replaced;
2. else the contract-level custom property ``citybase.datasetId``;
3. else the contract's ``domain`` (or, when it names none, the publishing department's only
   domain) and a name made from its ``name``, else its ``dataProduct``, else the name of its one
   schema object: lower case, every run of other characters a hyphen (``domain: seller``,
   ``name: my_table`` is ``seller.my-table``). ``name`` comes first because a data product may
   publish several contracts, each its own dataset; the product alone would merge them.

When the contract names an ODCS ``domain``, the dataset lives in that domain, whichever rule gave
the id. Pure: the catalog checks that the domain exists and that the department may publish to
it (:mod:`.service`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from services.common.i18n import N_, Sentence
from services.common.problems import FieldError

DATASET_ID_PROPERTY = "citybase.datasetId"
"""Contract-level custom property naming the dataset when the contract's ``id`` is not one."""

DATASET_ID = re.compile(r"^[a-z][a-z0-9-]{1,62}\.[a-z][a-z0-9-]{1,62}$")
_SEGMENT = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
_MEANT_AS_DATASET_ID = re.compile(r"^[^.\s]+\.[^.\s]+$")


@dataclass(frozen=True)
class DatasetIdentity:
    """The dataset a contract describes, and the rule that named it (``id``, the custom
    property, or ``domain`` with ``name``/``dataProduct``)."""

    dataset_id: str
    source: str

    @property
    def domain_id(self) -> str:
        return self.dataset_id.split(".", 1)[0]


def slug(text: Any) -> str | None:
    """``text`` as one part of a dataset id, or None when it cannot be one."""
    if not isinstance(text, str):
        return None
    candidate = re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")[:63].rstrip("-")
    return candidate if _SEGMENT.match(candidate) else None


def dataset_identity(
    raw: dict[str, Any], *, default_domain: str | None
) -> tuple[DatasetIdentity | None, list[FieldError]]:
    """The contract's dataset identity, or the errors saying why none can be derived (all of them)."""
    errors: list[FieldError] = []
    odcs_domain = raw.get("domain")
    domain = slug(odcs_domain)
    if odcs_domain is not None and domain is None:
        errors.append(
            FieldError(
                path="/domain",
                rule="dataset-domain",
                message=Sentence(
                    N_(
                        "domain %(domain)r cannot name a citybase domain: "
                        "it needs a letter first, then letters, digits or hyphens (2 to 63)"
                    ),
                    domain=odcs_domain,
                ),
            )
        )
    id_errors: list[FieldError] = []
    identity = _from_id(raw, id_errors)
    if identity is None and not id_errors:
        identity = _from_custom_property(raw, id_errors)
    errors += id_errors
    if identity is None and not errors:
        identity = _from_domain_and_name(raw, domain or default_domain, errors)
    if identity is not None and domain is not None and identity.domain_id != domain:
        errors.append(
            FieldError(
                path="/domain",
                rule="dataset-domain",
                message=Sentence(
                    N_(
                        "the contract's domain is %(domain)r but its dataset id %(dataset_id)r "
                        "(from %(source)s) is in domain %(domain_id)r"
                    ),
                    domain=odcs_domain,
                    dataset_id=identity.dataset_id,
                    source=identity.source,
                    domain_id=identity.domain_id,
                ),
            )
        )
    return (None, errors) if errors else (identity, [])


def record_type_errors(raw: dict[str, Any]) -> list[FieldError]:
    """A dataset streams one record type: a contract with several schema objects is refused,
    naming them, rather than cut to one.

    A dataset's topic, grants, masking and quality are per dataset; streaming the first object
    and dropping the others would lose fields without a word (a 68-table contract kept 4 of 600
    columns), so the publisher registers one contract per object, each its own dataset.
    """
    objects = raw.get("schema")
    if not isinstance(objects, list) or len(objects) < 2:
        return []
    names = ", ".join(repr(obj.get("name")) if isinstance(obj, dict) else "?" for obj in objects)
    return [
        FieldError(
            path="/schema",
            rule="one-schema-object",
            message=Sentence(
                N_(
                    "a citybase dataset streams one record type, and this contract has %(count)s "
                    "schema objects (%(names)s); register one contract per object, each its own dataset"
                ),
                count=len(objects),
                names=names,
            ),
        )
    ]


def _from_id(raw: dict[str, Any], errors: list[FieldError]) -> DatasetIdentity | None:
    contract_id = raw.get("id")
    if not isinstance(contract_id, str):
        return None
    if DATASET_ID.match(contract_id):
        return DatasetIdentity(contract_id, "id")
    if _MEANT_AS_DATASET_ID.match(contract_id):
        # One dot, no spaces: the publisher wrote a dataset id, and it does not fit. Naming the
        # dataset otherwise would register it under an id its publisher never wrote.
        errors.append(
            FieldError(
                path="/id",
                rule="dataset-id",
                message=Sentence(
                    N_(
                        "id %(contract_id)r reads as a dataset id but is not one: <domain>.<name>, "
                        "each a lower-case letter then 1 to 62 lower-case letters, digits or hyphens, "
                        "e.g. transport.bus-arrivals"
                    ),
                    contract_id=contract_id,
                ),
            )
        )
    return None


def _from_custom_property(raw: dict[str, Any], errors: list[FieldError]) -> DatasetIdentity | None:
    customs = raw.get("customProperties")
    for index, custom in enumerate(customs if isinstance(customs, list) else ()):
        if not isinstance(custom, dict) or custom.get("property") != DATASET_ID_PROPERTY:
            continue
        value = custom.get("value")
        if isinstance(value, str) and DATASET_ID.match(value):
            return DatasetIdentity(value, f"customProperties {DATASET_ID_PROPERTY}")
        errors.append(
            FieldError(
                path=f"/customProperties/{index}/value",
                rule="dataset-id",
                message=Sentence(
                    N_(
                        "%(property)s is %(value)r, not a dataset id: "
                        "<domain>.<name> in lower case, e.g. transport.bus-arrivals"
                    ),
                    property=DATASET_ID_PROPERTY,
                    value=value,
                ),
            )
        )
    return None


def _from_domain_and_name(
    raw: dict[str, Any], domain: str | None, errors: list[FieldError]
) -> DatasetIdentity | None:
    named = [
        (source, name)
        for source, name in (
            ("name", slug(raw.get("name"))),
            ("dataProduct", slug(raw.get("dataProduct"))),
            ("schema object's name", _only_object_name(raw)),
        )
        if name is not None
    ]
    if domain is not None and named:
        source, name = named[0]
        return DatasetIdentity(f"{domain}.{name}", f"domain and {source}")
    missing = [
        what
        for what, absent in (
            (Sentence(N_("names no domain (and the department has no single domain)")), domain is None),
            (Sentence(N_("has no name, dataProduct or single schema object to name the dataset")), not named),
        )
        if absent
    ]
    lacking = (
        Sentence(N_("%(first)s and %(second)s"), first=missing[0], second=missing[1])
        if len(missing) == 2
        else missing[0]
    )
    errors.append(
        FieldError(
            path="/id",
            rule="dataset-id",
            message=Sentence(
                N_(
                    "citybase cannot tell which dataset this contract describes: its id %(contract_id)r "
                    "is not a dataset id (<domain>.<name> in lower case, e.g. transport.bus-arrivals), "
                    "it has no %(property)s custom property, and it %(lacking)s; give one of the three"
                ),
                contract_id=raw.get("id"),
                property=DATASET_ID_PROPERTY,
                lacking=lacking,
            ),
        )
    )
    return None


def _only_object_name(raw: dict[str, Any]) -> str | None:
    objects = raw.get("schema")
    if isinstance(objects, list) and len(objects) == 1 and isinstance(objects[0], dict):
        return slug(objects[0].get("name"))
    return None
