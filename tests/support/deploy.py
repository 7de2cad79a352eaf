"""What the deploy/ tests compare: metric names in an exposition, in PromQL, in rules and dashboards;
where deploy/ is, and what a scrape of each service gave."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"


def build(kustomize: list[str], directory: Path) -> list[dict[str, Any]]:
    """The manifests a kustomization builds (``kustomize`` is the command that builds one)."""
    done = subprocess.run([*kustomize, str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [document for document in yaml.safe_load_all(done.stdout) if document]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {document["metadata"]["name"]: document for document in manifests if document["kind"] == kind}


UNKNOWN_PATH = "/v1/no-such-route/4f1d2c9e-record-id"
"""A path no service has: its 404 must not add a route label of its own."""

PROMETHEUS_SERIES = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added", "ALERTS"}
)
"""Series Prometheus makes itself for every target: no service exposes them."""

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "untyped": ("",),
}


@dataclass
class PrometheusText:
    """One scrape: each family's type, every series name a query may name, every label's values."""

    types: dict[str, str] = field(default_factory=dict)
    label_values: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @property
    def series_names(self) -> set[str]:
        names: set[str] = set()
        for family, kind in self.types.items():
            base = family.removesuffix("_total") if kind == "counter" else family
            names.update(base + suffix for suffix in _SUFFIXES.get(kind, ("",)))
        return names


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s")
_LABEL = re.compile(r'(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> PrometheusText:
    parsed = PrometheusText()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            parsed.types[name] = kind.strip()
            continue
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        for label in _LABEL.finditer(match.group("labels") or ""):
            parsed.label_values.setdefault((match.group("name"), label.group("name")), set()).add(
                label.group("value")
            )
    return parsed


# PromQL words that look like names but are not metrics.
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*")
_IDENTIFIER = re.compile(r"(?<![a-zA-Z0-9_:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_NUMBER = re.compile(r"(?<![a-zA-Z0-9_:])[0-9][0-9.]*(?:[eE][+-]?[0-9]+)?[a-zA-Z0-9]*")


def promql_metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects.

    Skips function and aggregation names (an identifier followed by ``(``), keywords, label names
    in matchers and in ``by``/``without``/``on``/``ignoring``/``group_*`` lists, string literals,
    durations and Grafana variables; takes ``{__name__="..."}`` selectors.
    """
    names = set(_NAME_MATCHER.findall(expression))
    text = _VARIABLE.sub(" 1 ", expression)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _NUMBER.sub(" 1 ", text)  # 0.99, 1e3, offset 5m, 1h30m
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def rule_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yml"))


def rule_expressions(path: Path) -> Iterator[tuple[str, str]]:
    """(alert or record name, expression) of every rule in a Prometheus rules file."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in document["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def recorded_names(paths: Iterable[Path]) -> set[str]:
    """Series that recording rules make: queries may name them, no service exposes them."""
    names: set[str] = set()
    for path in paths:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        names.update(
            rule["record"] for group in document["groups"] for rule in group["rules"] if "record" in rule
        )
    return names


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(path: Path) -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every Prometheus target and templating query of a dashboard."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield panel.get("title", "?"), target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query":
            text = query.get("query", "") if isinstance(query, dict) else str(query)
            for inner in re.findall(r"label_values\((.*),\s*[a-zA-Z_]+\s*\)$", text) or [text]:
                yield f"${variable['name']}", inner


@dataclass(frozen=True)
class Scrape:
    text: str
    parsed: PrometheusText
    routes: frozenset[str]
