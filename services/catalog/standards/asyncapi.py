"""AsyncAPI 3.0.0 documents of the topics: one per dataset, and one for the whole platform.

A scenario builder (or a code generator) reads these to learn where a dataset's records flow,
how they are keyed, which CloudEvents headers they carry and what one record looks like. The
documents take the point of view of a *client* of the platform: a consumer ``receive``s from
``ds.<id>`` (and a publisher from its ``dlq.<id>``), a publisher that speaks Kafka ``send``s to
``raw.<id>``, and a subscriber ``receive``s granted records from the feeds API.

Record schemas are JSON Schema draft 2020-12, which AsyncAPI 3.0 does not list among its schema
formats (it requires draft-07 and its own draft-07 superset). Most contract-derived schemas use
only keywords whose meaning is the same in both drafts; those are embedded as
``application/schema+json;version=draft-07`` so that every AsyncAPI tool reads them. A schema
that needs 2020-12 (``prefixItems``, ``unevaluatedProperties``, ``$defs``, siblings of ``$ref``,
...) is embedded unchanged under ``application/schema+json;version=2020-12``: valid AsyncAPI,
honest about its dialect, though tools that only know draft-07 will treat it as opaque. Either
way the schema's local ``$ref`` are rebased onto its place in the document, where AsyncAPI tools
resolve them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.catalog.standards.model import DatasetDescription, PlatformLinks
from services.common import topics

ASYNCAPI_VERSION = "3.0.0"
JSON_SCHEMA_DRAFT_07 = "application/schema+json;version=draft-07"
JSON_SCHEMA_2020_12 = "application/schema+json;version=2020-12"
KAFKA_BINDING_VERSION = "0.5.0"
RECORD_CONTENT_TYPE = "application/json"
UNVERSIONED = "0.0.0"
"""``info.version`` of a dataset without a contract: AsyncAPI requires a version string."""

CLOUDEVENTS_HEADERS: tuple[str, ...] = (
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_specversion",
    "ce_subject",
    "content-type",
    "ce_dataschema",
    "ce_dataset",
    "ce_contractversion",
)
"""Kafka headers of a record on ``ds.<id>``: CloudEvents 1.0 Kafka binding, binary mode."""

PLATFORM_TOPICS: dict[str, tuple[str, str]] = {
    topics.CATALOG: (
        "'<kind>:<entity id>' (dataset:transport.bus-arrivals)",
        "Catalog changes (dataset, contract version, principal, grant, revocation): each event the "
        "whole current state of one entity, compacted by entity; a deleted entity is a tombstone "
        "(no value) under its key. Ingest, feeds and quality build their read models from it.",
    ),
    topics.USAGE: (
        "the scenario id (an open-data snapshot: the dataset id)",
        "Delivery metering written by feeds: records and bytes delivered per subscription, "
        "replays, and the open-data snapshots served without a grant.",
    ),
    topics.QUALITY: (
        "the dataset id",
        "Quality score updates and threshold breaches written by quality.",
    ),
}
"""Platform topics: key and what flows on them (DESIGN.md, Topics)."""

# Keywords whose meaning exists only in 2020-12 (or changed since draft-07); one of them anywhere
# in a record schema keeps it in its own dialect. ``dependencies`` is the reverse case: a
# draft-07 keyword that 2020-12 ignores, so reading it as draft-07 would add a constraint.
_NOT_DRAFT_07 = frozenset(
    {
        "$defs",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
        "$recursiveAnchor",
        "$vocabulary",
        "prefixItems",
        "unevaluatedProperties",
        "unevaluatedItems",
        "dependentRequired",
        "dependentSchemas",
        "minContains",
        "maxContains",
        "contentSchema",
        "dependencies",
    }
)
# Siblings of ``$ref`` that are annotations only: draft-07 ignoring them changes no validation.
_REF_ANNOTATIONS = frozenset(
    {"$ref", "title", "description", "$comment", "examples", "default", "deprecated"}
)
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SUBSCHEMAS = ("additionalProperties", "items", "contains", "propertyNames", "not", "if", "then", "else")


def _is_draft_07(schema: Any) -> bool:
    """Whether a 2020-12 schema means the same when read as draft-07."""
    if not isinstance(schema, Mapping):
        return True  # a boolean schema, or not a schema at all (the validator will say so)
    if _NOT_DRAFT_07 & schema.keys():
        return False
    if "$ref" in schema and schema.keys() - _REF_ANNOTATIONS:
        return False  # 2020-12 applies siblings of $ref; draft-07 ignores them
    if isinstance(schema.get("items"), list):
        return False  # tuple validation is prefixItems in 2020-12
    children: list[Any] = [schema[key] for key in _SUBSCHEMAS if key in schema]
    for key in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(key), Mapping):
            children += schema[key].values()
    for key in _SUBSCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            children += schema[key]
    return all(_is_draft_07(child) for child in children)


def _rebase(node: Any, base: str) -> Any:
    """A copy of ``node`` whose local ``$ref`` (``#/...``) point at the same place under ``base``.

    AsyncAPI tools resolve every ``$ref`` against the whole AsyncAPI document, so a schema's
    ``#/$defs/stop`` must become ``#/channels/.../payload/schema/$defs/stop`` once embedded.
    """
    if isinstance(node, Mapping):
        return {
            key: base + value[1:]
            if key == "$ref" and isinstance(value, str) and (value == "#" or value.startswith("#/"))
            else _rebase(value, base)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rebase(value, base) for value in node]
    return node


def payload_schema(schema: Mapping[str, Any] | None, *, missing: str, location: str) -> dict[str, Any]:
    """A message payload (Multi Format Schema Object) for a JSON Schema draft 2020-12.

    ``location`` is the JSON Pointer of the payload in the AsyncAPI document (``#/channels/...``),
    so that the schema's local references are rebased onto it. ``$schema`` is dropped when the
    schema is embedded as draft-07: the ``schemaFormat`` states the dialect, and a 2020-12
    ``$schema`` would contradict it. Without a schema, the payload is any JSON object, described
    by ``missing``.
    """
    if schema is None:
        return {"type": "object", "description": missing}
    embedded = _rebase(schema, f"{location}/schema")
    if _is_draft_07(schema):
        embedded.pop("$schema", None)
        return {"schemaFormat": JSON_SCHEMA_DRAFT_07, "schema": embedded}
    return {"schemaFormat": JSON_SCHEMA_2020_12, "schema": embedded}


def cloudevents_headers(dataset: DatasetDescription, links: PlatformLinks) -> dict[str, Any]:
    """The schema of the CloudEvents headers ingest writes on a record of ``ds.<id>``."""
    dataschema: dict[str, Any] = {
        "type": "string",
        "format": "uri-reference",
        "description": "The contract version the record was validated against.",
    }
    contract_version: dict[str, Any] = {
        "type": "string",
        "description": "Version of the dataset's ODCS contract the record conforms to.",
    }
    if dataset.contract_version is not None:
        dataschema["examples"] = [links.contract_version(dataset.id, dataset.contract_version)]
        contract_version["examples"] = [dataset.contract_version]
    key_fields = ", ".join(dataset.primary_key) or "none declared"
    return {
        "type": "object",
        "description": (
            "CloudEvents 1.0 attributes as Kafka headers (binary content mode); any CloudEvents "
            "SDK reads a record, and the value stays the plain JSON record."
        ),
        "required": [
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_specversion",
            "ce_time",
            "content-type",
            "ce_dataset",
            "ce_contractversion",
            "ce_dataschema",
        ],
        "properties": {
            "ce_id": {
                "type": "string",
                "description": "Unique id of the event; consumers de-duplicate on it.",
            },
            "ce_source": {
                "type": "string",
                "format": "uri-reference",
                "description": "Where the record entered the platform.",
                "examples": [f"/ingest/datasets/{dataset.id}"],
            },
            "ce_type": {
                "type": "string",
                "description": "The kind of event: a validated record of a dataset.",
                "examples": ["city.citybase.record.v1"],
            },
            "ce_time": {
                "type": "string",
                "format": "date-time",
                "description": "When the record was accepted, RFC 3339 in UTC.",
            },
            "ce_specversion": {"type": "string", "const": "1.0"},
            "ce_subject": {
                "type": "string",
                "description": f"The record's primary key ({key_fields}).",
            },
            "content-type": {"type": "string", "const": RECORD_CONTENT_TYPE},
            "ce_dataschema": dataschema,
            "ce_dataset": {"type": "string", "const": dataset.id, "description": "CloudEvents extension."},
            "ce_contractversion": contract_version,
        },
    }


def _key(description: str) -> dict[str, Any]:
    return {
        "kafka": {
            "key": {"type": "string", "description": description},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }


def _primary_key(dataset: DatasetDescription) -> str:
    if not dataset.primary_key:
        return "The record key; the contract declares no primary key."
    return f"The record's primary key ({', '.join(dataset.primary_key)}) as UTF-8 text."


def _pointer(*path: str) -> str:
    # JSON Pointer escaping: dataset ids never hold "~" or "/", but a pointer must stay valid.
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in path)


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": _pointer(*path)}


def _servers(links: PlatformLinks, kafka_bootstrap: str) -> dict[str, Any]:
    feeds = urlsplit(links.feeds)
    return {
        "kafka": {
            "host": kafka_bootstrap,
            "protocol": "kafka",
            "description": (
                "The platform's Kafka cluster (bootstrap servers as a Kafka client takes them). "
                "Reading ds.* needs a Kafka ACL granted by the platform."
            ),
        },
        "feeds": {
            "host": feeds.netloc,
            "pathname": feeds.path,
            "protocol": feeds.scheme,
            "description": (
                "The feeds HTTP API: a subscription receives granted, masked records by server-sent "
                f"events, long-poll or webhook. Its OpenAPI description: {links.feeds_openapi}"
            ),
        },
    }


def _dataset_channels(dataset: DatasetDescription, links: PlatformLinks) -> dict[str, Any]:
    """The ``ds``, ``raw`` and ``dlq`` channels of one dataset, keyed by their topic."""
    kafka = [_ref("servers", "kafka")]

    def record(topic: str, message: str) -> dict[str, Any]:
        return payload_schema(
            dataset.record_schema,
            missing="No contract is registered yet: any JSON object is accepted.",
            location=_pointer("channels", topic, "messages", message, "payload"),
        )

    return {
        dataset.topic: {
            "address": dataset.topic,
            "title": f"Validated records of {dataset.id}",
            "description": (
                f"Records of {dataset.title} that passed the contract, as CloudEvents in binary "
                "mode, keyed by the primary key so that one key's records stay ordered."
            ),
            "servers": kafka,
            "messages": {
                "record": {
                    "name": "record",
                    "title": f"A record of {dataset.id}",
                    "contentType": RECORD_CONTENT_TYPE,
                    "headers": cloudevents_headers(dataset, links),
                    "payload": record(dataset.topic, "record"),
                    "correlationId": {
                        "description": "The CloudEvents id identifies the event end to end.",
                        "location": "$message.header#/ce_id",
                    },
                    "bindings": _key(_primary_key(dataset)),
                }
            },
        },
        dataset.raw_topic: {
            "address": dataset.raw_topic,
            "title": f"Raw records of {dataset.id}",
            "description": "Where a publisher that speaks Kafka writes records; ingest validates them.",
            "servers": kafka,
            "messages": {
                "rawRecord": {
                    "name": "rawRecord",
                    "title": f"A raw record of {dataset.id}",
                    "contentType": RECORD_CONTENT_TYPE,
                    "payload": record(dataset.raw_topic, "rawRecord"),
                    "bindings": _key("Any key: ingest re-keys accepted records by their primary key."),
                }
            },
        },
        dataset.dlq_topic: {
            "address": dataset.dlq_topic,
            "title": f"Rejected records of {dataset.id}",
            "description": "Records ingest rejected, as they arrived, with the reasons in headers.",
            "servers": kafka,
            "messages": {
                "rejectedRecord": {
                    "name": "rejectedRecord",
                    "title": f"A rejected record of {dataset.id}",
                    "headers": {
                        "type": "object",
                        "description": "The record's own headers and the rejection reasons ingest adds.",
                        "additionalProperties": {"type": "string"},
                    },
                    "payload": {
                        "description": "The rejected record as it arrived (usually, not always, JSON)."
                    },
                    "bindings": _key(_primary_key(dataset)),
                }
            },
        },
    }


def _dataset_operations(dataset: DatasetDescription) -> dict[str, Any]:
    def operation(action: str, topic: str, message: str, summary: str) -> dict[str, Any]:
        return {
            "action": action,
            "channel": _ref("channels", topic),
            "messages": [_ref("channels", topic, "messages", message)],
            "summary": summary,
        }

    return {
        f"receive.{dataset.topic}": operation(
            "receive",
            dataset.topic,
            "record",
            f"Consume validated records of {dataset.id} (needs a Kafka ACL).",
        ),
        f"send.{dataset.raw_topic}": operation(
            "send", dataset.raw_topic, "rawRecord", f"Publish records of {dataset.id} straight into Kafka."
        ),
        f"receive.{dataset.dlq_topic}": operation(
            "receive",
            dataset.dlq_topic,
            "rejectedRecord",
            f"Follow the records of {dataset.id} ingest rejected.",
        ),
    }


def _feed_channel(links: PlatformLinks, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        # The address is the subscription's own endpoint, known only once it is created.
        "address": None,
        "title": "Granted records delivered to a subscription",
        "description": (
            f"Create a subscription with POST {links.feeds_subscriptions}; records then arrive by "
            "server-sent events, long-poll or webhook. Nothing is delivered without an active grant."
        ),
        "servers": [_ref("servers", "feeds")],
        "messages": {
            "deliveredRecord": {
                "name": "deliveredRecord",
                "contentType": RECORD_CONTENT_TYPE,
                "payload": payload,
            }
        },
    }


def _feed_operation() -> dict[str, Any]:
    return {
        "action": "receive",
        "channel": _ref("channels", "feed"),
        "messages": [_ref("channels", "feed", "messages", "deliveredRecord")],
        "summary": "Receive granted records on a subscription.",
    }


def dataset_asyncapi(
    dataset: DatasetDescription, links: PlatformLinks, *, kafka_bootstrap: str
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of one dataset's topics and its feed.

    ``kafka_bootstrap`` is the cluster's bootstrap address as clients use it (``host:port``, or
    several comma-separated). ``info.version`` is the contract version, :data:`UNVERSIONED`
    before the first contract.
    """
    masked = {
        "type": "object",
        "description": (
            f"A record of {dataset.id} as the subscription's grant allows: only the granted fields, "
            f"sensitive ones masked (hash, redact or partial). Unmasked fields follow the record "
            f"schema of the {dataset.topic} channel."
        ),
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": links.dataset(dataset.id),
        "info": {
            "title": f"{dataset.title} ({dataset.id})",
            "version": dataset.contract_version or UNVERSIONED,
            "description": (
                f"{dataset.description}\n\nPublished by {dataset.publisher.name}; classification "
                f"`{dataset.classification}`. Operations are those of a client of the platform."
            ),
            "tags": [{"name": tag} for tag in dict.fromkeys((dataset.domain, *dataset.tags))],
            "externalDocs": {"description": "Catalog entry", "url": links.dataset(dataset.id)},
        },
        "defaultContentType": RECORD_CONTENT_TYPE,
        "servers": _servers(links, kafka_bootstrap),
        "channels": {**_dataset_channels(dataset, links), "feed": _feed_channel(links, masked)},
        "operations": {**_dataset_operations(dataset), "receive.feed": _feed_operation()},
    }


EVENT_TYPE_KEYWORD = "x-citybase-event-type"
"""Keyword of an event schema under ``contracts/events/`` naming the CloudEvents type it describes."""


EVENT_FILE_TOPICS = {"feeds": topics.USAGE}
"""File prefixes under ``contracts/events/`` named after the service that writes the topic rather
than the topic: ``feeds.*.json`` are the events feeds writes on ``platform.usage``."""


def read_event_schemas(directory: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """The platform event schemas kept as ``<topic suffix>.<event>.json`` files, by topic.

    ``contracts/events/catalog.dataset.json`` becomes message ``catalog.dataset`` of
    ``platform.catalog``, ``feeds.usage.json`` message ``feeds.usage`` of ``platform.usage``
    (:data:`EVENT_FILE_TOPICS`). Files of a topic the platform does not have are left out. Reading the
    directory is the caller's choice (at startup, say); :func:`platform_asyncapi` stays pure.
    """
    by_topic: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.json")):
        prefix = path.stem.split(".", 1)[0]
        topic = EVENT_FILE_TOPICS.get(prefix, f"platform.{prefix}")
        if topic in PLATFORM_TOPICS:
            by_topic.setdefault(topic, {})[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return by_topic


def _platform_message(
    topic: str, name: str, schema: Mapping[str, Any] | None, *, key: str, missing: str
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "contentType": RECORD_CONTENT_TYPE,
        "payload": payload_schema(
            schema, missing=missing, location=_pointer("channels", topic, "messages", name, "payload")
        ),
        "bindings": _key(f"Keyed by {key}."),
    }
    if schema is not None:
        for field in ("title", "description"):
            if isinstance(schema.get(field), str):
                message[field] = schema[field]
        event_type = schema.get(EVENT_TYPE_KEYWORD)
        if isinstance(event_type, str):
            # Platform events share the record envelope: CloudEvents in binary mode.
            message["headers"] = {
                "type": "object",
                "description": "CloudEvents 1.0 attributes as Kafka headers (binary content mode).",
                "required": ["ce_id", "ce_source", "ce_type", "ce_specversion"],
                "properties": {
                    "ce_id": {"type": "string"},
                    "ce_source": {"type": "string", "format": "uri-reference"},
                    "ce_type": {"type": "string", "const": event_type},
                    "ce_time": {"type": "string", "format": "date-time"},
                    "ce_specversion": {"type": "string", "const": "1.0"},
                    "ce_subject": {"type": "string", "description": "The id of the entity."},
                    "content-type": {"type": "string", "const": RECORD_CONTENT_TYPE},
                },
            }
    return message


def platform_asyncapi(
    datasets: Iterable[DatasetDescription],
    links: PlatformLinks,
    *,
    kafka_bootstrap: str,
    version: str = "1.0.0",
    event_schemas: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """One AsyncAPI 3.0.0 document for the whole platform: every dataset's topics, the platform
    topics (``platform.catalog``, ``platform.usage``, ``platform.quality``) and the feed.

    ``event_schemas`` maps a platform topic to its events, by message name, each the JSON Schema
    of the event's data (see :func:`read_event_schemas` for the ones under ``contracts/events/``);
    a topic without any gets one message with a described, open object schema.
    """
    event_schemas = event_schemas or {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for dataset in datasets:
        channels.update(_dataset_channels(dataset, links))
        operations.update(_dataset_operations(dataset))
    for topic, (key, description) in PLATFORM_TOPICS.items():
        # One message per event schema; a topic without schemas yet gets one open message.
        found = event_schemas.get(topic)
        schemas: dict[str, Mapping[str, Any] | None] = (
            dict(found) if found else {topic.removeprefix("platform.") + "Event": None}
        )
        messages = {
            name: _platform_message(topic, name, schema, key=key, missing=description)
            for name, schema in schemas.items()
        }
        channels[topic] = {
            "address": topic,
            "description": description,
            "servers": [_ref("servers", "kafka")],
            "messages": messages,
        }
        operations[f"receive.{topic}"] = {
            "action": "receive",
            "channel": _ref("channels", topic),
            "messages": [_ref("channels", topic, "messages", name) for name in messages],
        }
    delivered = {
        "type": "object",
        "description": (
            "A record of a granted dataset: only the granted fields, sensitive ones masked. The "
            "dataset's ds.<id> channel describes the unmasked record."
        ),
    }
    channels["feed"] = _feed_channel(links, delivered)
    operations["receive.feed"] = _feed_operation()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": links.platform_asyncapi,
        "info": {
            "title": "citybase platform topics",
            "version": version,
            "description": (
                "Every dataset's topics (ds.<id> validated records, raw.<id> publisher input, "
                "dlq.<id> rejected records), the platform topics and the feeds delivery. "
                "Operations are those of a client of the platform."
            ),
        },
        "defaultContentType": RECORD_CONTENT_TYPE,
        "servers": _servers(links, kafka_bootstrap),
        "channels": channels,
        "operations": operations,
    }
