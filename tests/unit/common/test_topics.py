"""Topic names and specs have one home: services/common/topics.py."""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citybase.platform import SERVICE_FACTORIES
from services.common import catalog_events, quality_events, topics, usage_events
from services.common.bus import TopicSpec
from services.common.worker import wait_until
from tests.factories import embedded_settings

ROOT = Path(__file__).resolve().parents[3]
TOPICS_MODULE = ROOT / "services" / "common" / "topics.py"
PREFIX = re.compile(r"(?<![\w.])(?:ds|dlq|raw)\.(?:\{|$)")
"""A per-dataset topic prefix as code spells it to build a name: "ds.", f"dlq.{id}", "... raw.{id}"."""


def _literals(tree: ast.AST) -> list[tuple[int, str]]:
    """Each string literal of a module, an f-string with ``{`` where its values go."""
    found: list[tuple[int, str]] = []
    parts = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                part.value if isinstance(part, ast.Constant) and isinstance(part.value, str) else "{"
                for part in node.values
            )
            found.append((node.lineno, text))
    return sorted(found)


def prefix_literals(source: str) -> list[tuple[int, str]]:
    return [(line, text) for line, text in _literals(ast.parse(source)) if PREFIX.search(text)]


def test_the_scan_sees_every_way_a_prefix_was_spelled() -> None:
    source = (
        'A = "ds."\n'
        'B = f"dlq.{dataset_id}"\n'
        'C = topic.removeprefix("raw.")\n'
        'D = f"rejected records are on dlq.{dataset}"\n'
        'E = "Reading ds.* needs an ACL; ``ds.<dataset>`` carries records"\n'
        'F = "kafka.bootstrap.servers"\n'
    )
    assert [line for line, _ in prefix_literals(source)] == [1, 2, 3, 4]


def test_no_topic_prefix_literal_outside_the_topics_module() -> None:
    sources = [
        path
        for folder in ("services", "citybase")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != TOPICS_MODULE
    ]
    assert len(sources) > 50
    spelled = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in sources
        for line, text in prefix_literals(path.read_text(encoding="utf-8"))
    ]
    assert spelled == [], "build topic names with services.common.topics:\n" + "\n".join(spelled)
    assert prefix_literals(TOPICS_MODULE.read_text(encoding="utf-8")), "the scan no longer sees the prefixes"


def test_dataset_topics_are_named_from_the_dataset_id() -> None:
    dataset = "transport.bus-arrivals"
    assert topics.records_topic(dataset) == "ds.transport.bus-arrivals"
    assert topics.dead_letter_topic(dataset) == "dlq.transport.bus-arrivals"
    assert topics.raw_topic(dataset) == "raw.transport.bus-arrivals"
    assert topics.dataset_of(topics.records_topic(dataset)) == (dataset, False)
    assert topics.dataset_of(topics.dead_letter_topic(dataset)) == (dataset, True)
    assert topics.dataset_of(topics.raw_topic(dataset)) is None
    assert topics.dataset_of_raw(topics.raw_topic(dataset)) == dataset


def test_the_event_modules_name_the_shared_specs() -> None:
    assert catalog_events.TOPIC_SPEC is topics.CATALOG_SPEC
    assert usage_events.TOPIC_SPEC is topics.USAGE_SPEC
    assert quality_events.TOPIC_SPEC is topics.QUALITY_SPEC
    assert {spec.name for spec in topics.PLATFORM_SPECS} == {
        catalog_events.TOPIC,
        usage_events.TOPIC,
        quality_events.TOPIC,
    }


ENSURED_BY = {
    "catalog": {topics.CATALOG, topics.USAGE, topics.QUALITY},
    "feeds": {topics.CATALOG, topics.USAGE},
    "ingest": {topics.CATALOG},
    "quality": {topics.CATALOG, topics.USAGE, topics.QUALITY},
}


def _created(bus_file: Path) -> dict[str, TopicSpec]:
    """The platform topics on the embedded bus, as they were created."""
    with sqlite3.connect(bus_file) as connection:
        rows = connection.execute(
            "SELECT name, partitions, retention_ms, compact FROM topics WHERE name LIKE 'platform.%'"
        ).fetchall()
    return {
        name: TopicSpec(name, partitions, retention_ms=retention_ms, compact=bool(compact))
        for name, partitions, retention_ms, compact in rows
    }


@pytest.mark.parametrize("service", sorted(ENSURED_BY))
def test_a_service_started_first_creates_the_platform_topics_from_the_shared_specs(
    service: str, tmp_path: Path
) -> None:
    """Whichever service starts first creates platform.usage, .quality and .catalog: each must
    create them as the one spec says (retention, compaction, partitions), not as it sees fit."""
    settings = embedded_settings(tmp_path)
    app = SERVICE_FACTORIES[service](settings)
    bus_file = Path(settings.bus_url.removeprefix("embedded://"))
    with TestClient(app) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200, 10), client.get("/readyz").text
        assert wait_until(lambda: set(_created(bus_file)) >= ENSURED_BY[service], 10), _created(bus_file)
    created = _created(bus_file)
    assert set(created) == ENSURED_BY[service]
    shared = {spec.name: spec for spec in topics.PLATFORM_SPECS}
    for name, spec in created.items():
        assert spec == shared[name], f"{service} created {name} as {spec}, not as {shared[name]}"
