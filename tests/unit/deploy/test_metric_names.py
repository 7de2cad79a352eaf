"""Every metric an alert rule or a dashboard panel names is one a running service really exposes,
and every metric a service exposes is documented in the README's metrics table.

Names come from the rules files and dashboards with the PromQL parser of ``names.py``, and are
compared with the scrapes of ``exposed_metrics``: a renamed metric never leaves a panel without
data, and a new one never ships without a line that tells an operator what it counts.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from tests.support.deploy import (
    DEPLOY,
    PROMETHEUS_SERIES,
    Scrape,
    dashboard_expressions,
    promql_metric_names,
    recorded_names,
    rule_expressions,
    rule_files,
)

RULES = DEPLOY / "prometheus" / "rules"
MAIN_RULES = RULES / "citybase.rules.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
README = DEPLOY.parent / "README.md"


def named_metrics(paths: list[Path]) -> dict[str, set[str]]:
    """Metric name -> where it is named (``file: alert or panel``)."""
    named: dict[str, set[str]] = {}
    for path in paths:
        expressions = dashboard_expressions(path) if path.suffix == ".json" else rule_expressions(path)
        for where, expression in expressions:
            for name in promql_metric_names(expression):
                named.setdefault(name, set()).add(f"{path.name}: {where}")
    return named


def exposed(scrapes: dict[str, Scrape]) -> set[str]:
    return set().union(*(scrape.parsed.series_names for scrape in scrapes.values()))


def not_exposed(named: dict[str, set[str]], scrapes: dict[str, Scrape]) -> dict[str, set[str]]:
    known = exposed(scrapes) | PROMETHEUS_SERIES | recorded_names(rule_files(RULES))
    return {name: where for name, where in sorted(named.items()) if name not in known}


def report(missing: dict[str, set[str]]) -> str:
    return "; ".join(f"{name} (in {', '.join(sorted(where))})" for name, where in missing.items())


def test_the_parser_finds_the_names_and_skips_functions_keywords_and_labels() -> None:
    expression = (
        'sum by (dataset, le) (rate(citybase_a_total{outcome="rejected", dataset=~"$dataset"}[$__rate_interval]))'
        " / ignoring (mode) group_left (department) citybase_b offset 5m"
        ' and on (dataset) {__name__="citybase_c", x="y"} > bool 1e3 or vector(0) unless up'
        " - dataset:citybase_d:rate10m offset 1h30m"
    )
    assert promql_metric_names(expression) == {
        "citybase_a_total",
        "citybase_b",
        "citybase_c",
        "up",
        "dataset:citybase_d:rate10m",
    }
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{route!="/metrics"}[5m])))'
    ) == {"x_bucket"}


def test_the_main_rules_name_only_metrics_the_services_expose(exposed_metrics: dict[str, Scrape]) -> None:
    missing = not_exposed(named_metrics([MAIN_RULES]), exposed_metrics)
    assert not missing, f"not exposed by any service: {report(missing)}"


def test_every_metric_in_rules_and_dashboards_is_exposed(exposed_metrics: dict[str, Scrape]) -> None:
    named = named_metrics([*rule_files(RULES), *DASHBOARDS])
    assert len(named) > 10
    missing = not_exposed(named, exposed_metrics)
    assert not missing, f"not exposed by any service: {report(missing)}"


def documented_metrics(readme: str) -> dict[str, set[str]]:
    """Metric family -> its labels, from the README's ``| metric | labels | what |`` table."""
    lines = readme.splitlines()
    start = lines.index("| metric | labels | what |") + 2
    documented: dict[str, set[str]] = {}
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines[start:]):
        names, labels = line.split("|")[1:3]
        for name in re.findall(r"`([a-z_:][a-z0-9_:]*)`", names):
            documented[name] = {label.strip() for label in labels.split(",") if label.strip()}
    return documented


def exposed_labels(scrapes: dict[str, Scrape]) -> dict[str, set[str]]:
    """Metric family -> the labels its samples carry (``le`` aside), for families with samples."""
    labels: dict[str, set[str]] = {}
    for scrape in scrapes.values():
        for series, label in scrape.parsed.label_values:
            family = re.sub(r"_(bucket|sum|count|created)$", "", series)
            family = family if family in scrape.parsed.types else series
            labels.setdefault(family, set()).update({label} - {"le"})
    return labels


def test_the_readme_documents_every_exposed_metric_and_no_other(exposed_metrics: dict[str, Scrape]) -> None:
    documented = documented_metrics(README.read_text(encoding="utf-8"))
    families = set().union(*(scrape.parsed.types for scrape in exposed_metrics.values()))
    assert len(families) > 20
    undocumented = sorted(families - set(documented))
    assert not undocumented, f"exposed but not in README's metrics table: {undocumented}"
    gone = sorted(set(documented) - families)
    assert not gone, f"in README's metrics table but exposed by no service: {gone}"


def test_the_readme_names_the_labels_each_metric_carries(exposed_metrics: dict[str, Scrape]) -> None:
    documented = documented_metrics(README.read_text(encoding="utf-8"))
    exposed = exposed_labels(exposed_metrics)
    assert {"citybase_http_requests_total", "citybase_ingest_records_total"} <= set(exposed)
    for family, labels in exposed_labels(exposed_metrics).items():
        assert labels == documented.get(family), (
            f"{family}: exposed with {labels}, README says {documented.get(family)}"
        )
