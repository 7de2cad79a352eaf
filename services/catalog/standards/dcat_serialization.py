"""The DCAT-AP 3 export written as Turtle or JSON-LD: one dataset, one department, or streamed for all.

Streaming: a catalog has up to ~10^5 datasets read from a database cursor. The streamed
serialisers write the prefixes (Turtle) or ``@context`` (JSON-LD) once, then each dataset's
statements on their own, so memory stays flat whatever the size of the catalog. They write the
statements themselves from rdflib terms instead of serialising one rdflib ``Graph`` per dataset:
rdflib's Turtle serialiser spends ~2.5 ms on a 60-triple graph and building the graph ~1.2 ms,
which would make a 100,000-dataset export take minutes. The tests prove the streamed output is
the same RDF graph as :func:`.dcat.catalog_graph`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from rdflib import Literal, URIRef
from rdflib.namespace import RDF, XSD

from services.catalog.standards.dcat import (
    catalog_link,
    catalog_triples,
    dataset_document,
    dataset_triples,
    publisher_document,
)
from services.catalog.standards.dcat_vocabularies import JSONLD_CONTEXT, PREFIXES, Triple
from services.catalog.standards.model import (
    CatalogDescription,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)

_RDF_TYPE_IRI = str(RDF.type)
_XSD_STRING_IRI = str(XSD.string)

# --- Turtle ---------------------------------------------------------------------------------

_TURTLE_PREFIXES = "".join(f"@prefix {prefix}: <{namespace}> .\n" for prefix, namespace in PREFIXES.items())
# A compacted name is used only when the local part is a plain Turtle PN_LOCAL; anything else
# is written as a full IRI.
_PLAIN_LOCAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_VOCABULARY_NAMES: dict[str, str | None] = {}


def _compact(iri: str) -> str | None:
    """``dct:title`` for a term of a prefixed vocabulary, else None.

    Only vocabulary terms (predicates, classes, datatypes) are compacted, so the memo holds a
    few dozen entries however many datasets are exported.
    """
    if iri not in _VOCABULARY_NAMES:
        _VOCABULARY_NAMES[iri] = None
        for prefix, namespace in PREFIXES.items():
            if iri.startswith(namespace) and _PLAIN_LOCAL.match(iri[len(namespace) :]):
                _VOCABULARY_NAMES[iri] = f"{prefix}:{iri[len(namespace) :]}"
    return _VOCABULARY_NAMES[iri]


def _turtle_vocabulary(iri: str) -> str:
    return _compact(iri) or f"<{iri}>"


def _turtle_term(term: URIRef | Literal) -> str:
    """An instance IRI or a literal in Turtle.

    IRIs are written as they are: the ones built here are valid by construction (dataset ids
    and the base URL are validated, user-entered ones are escaped by :mod:`.dcat`). A JSON string
    is a valid Turtle string (the same escapes, ``\\uXXXX`` included), and ``json.dumps`` is
    much faster than rdflib's ``n3()``.
    """
    if isinstance(term, Literal):
        text = json.dumps(str(term), ensure_ascii=False)
        if term.language is not None:
            return f"{text}@{term.language}"
        if term.datatype is not None:
            return f"{text}^^{_turtle_vocabulary(str(term.datatype))}"
        return text
    return f"<{term}>"


def _turtle_statements(triples: Iterable[Triple]) -> str:
    """Turtle for the statements, grouped by subject and predicate, without prefixes.

    Terms are grouped by their rendered text (plain ``str`` keys): rdflib terms hash and compare
    in Python, and this loop runs ~100 times per dataset.
    """
    by_subject: dict[str, dict[str, dict[str, None]]] = {}
    for subject, predicate, obj in triples:
        iri = str(predicate)
        if iri == _RDF_TYPE_IRI:
            verb, text = "a", _turtle_vocabulary(str(obj))
        else:
            verb, text = _turtle_vocabulary(iri), _turtle_term(obj)
        by_subject.setdefault(str(subject), {}).setdefault(verb, {})[text] = None
    return "\n".join(
        f"<{subject}>\n"
        + " ;\n".join(f"    {verb} {', '.join(objects)}" for verb, objects in predicates.items())
        + " .\n"
        for subject, predicates in by_subject.items()
    )


def _turtle_document(triples: Iterable[Triple]) -> str:
    return _TURTLE_PREFIXES + "\n" + _turtle_statements(triples)


def dataset_turtle(dataset: DatasetDescription, links: PlatformLinks) -> str:
    """One dataset as a Turtle document."""
    return _turtle_document(dataset_document(dataset, links))


def publisher_turtle(publisher: PublisherDescription, links: PlatformLinks) -> str:
    """What a department's URI answers in Turtle: the ``foaf:Agent`` and its contact point."""
    return _turtle_document(publisher_document(publisher, links))


def catalog_turtle(
    datasets: Iterable[DatasetDescription],
    links: PlatformLinks,
    catalog: CatalogDescription,
    paging: Iterable[Triple] = (),
) -> Iterator[str]:
    """The catalog as Turtle, in chunks: prefixes and catalog first, then one chunk per dataset.

    Consumes ``datasets`` lazily and keeps nothing of a dataset once its chunk is yielded, so a
    cursor over 100,000 rows streams in constant memory. The chunks concatenated are one
    Turtle document.
    """
    yield _TURTLE_PREFIXES + "\n" + _turtle_statements([*catalog_triples(catalog, links), *paging])
    for dataset in datasets:
        yield "\n" + _turtle_statements([catalog_link(dataset, links), *dataset_triples(dataset, links)])


# --- JSON-LD --------------------------------------------------------------------------------


def _jsonld_value(term: URIRef | Literal) -> Any:
    if isinstance(term, Literal):
        if term.language is not None:
            return {"@value": str(term), "@language": term.language}
        if term.datatype is not None and str(term.datatype) != _XSD_STRING_IRI:
            return {"@value": str(term), "@type": _compact(term.datatype) or str(term.datatype)}
        return str(term)
    return {"@id": str(term)}


def _jsonld_nodes(triples: Iterable[Triple]) -> list[dict[str, Any]]:
    """Node objects (one per subject) under :data:`JSONLD_CONTEXT`, without the context.

    Written directly from the statements rather than through rdflib's JSON-LD serialiser, for
    the same speed reason as the Turtle; the context only declares prefixes, so compaction is
    a prefix lookup.
    """
    nodes: dict[str, dict[str, Any]] = {}
    for subject, predicate, obj in triples:
        node = nodes.setdefault(str(subject), {"@id": str(subject)})
        iri = str(predicate)
        if iri == _RDF_TYPE_IRI:
            key, value = "@type", _compact(str(obj)) or str(obj)
        else:
            key, value = _compact(iri) or iri, _jsonld_value(obj)
        values = node.setdefault(key, [])
        if value not in values:
            values.append(value)
    # Single values unwrapped, as a compacting JSON-LD processor writes them.
    return [
        {
            key: values[0] if isinstance(values, list) and len(values) == 1 else values
            for key, values in node.items()
        }
        for node in nodes.values()
    ]


def _jsonld_document(triples: Iterable[Triple]) -> dict[str, Any]:
    return {"@context": JSONLD_CONTEXT, "@graph": _jsonld_nodes(triples)}


def dataset_jsonld(dataset: DatasetDescription, links: PlatformLinks) -> dict[str, Any]:
    """One dataset as a JSON-LD document (``@context`` and ``@graph``)."""
    return _jsonld_document(dataset_document(dataset, links))


def publisher_jsonld(publisher: PublisherDescription, links: PlatformLinks) -> dict[str, Any]:
    """What a department's URI answers in JSON-LD: the ``foaf:Agent`` and its contact point."""
    return _jsonld_document(publisher_document(publisher, links))


def _dumps(node: dict[str, Any]) -> str:
    return json.dumps(node, ensure_ascii=False, separators=(",", ":"))


def catalog_jsonld(
    datasets: Iterable[DatasetDescription],
    links: PlatformLinks,
    catalog: CatalogDescription,
    paging: Iterable[Triple] = (),
) -> Iterator[str]:
    """The catalog as one JSON-LD document, in chunks: ``@context`` once, then node objects.

    Each dataset contributes its node objects to the single ``@graph`` array, plus a small node
    adding it to the catalog's ``dcat:dataset`` (JSON-LD merges node objects with the same
    ``@id``). Constant memory, as :func:`catalog_turtle`.
    """
    header = _jsonld_nodes([*catalog_triples(catalog, links), *paging])
    yield '{"@context":' + _dumps(JSONLD_CONTEXT) + ',"@graph":[\n' + ",\n".join(map(_dumps, header))
    for dataset in datasets:
        nodes = _jsonld_nodes([catalog_link(dataset, links), *dataset_triples(dataset, links)])
        yield ",\n" + ",\n".join(map(_dumps, nodes))
    yield "\n]}\n"
