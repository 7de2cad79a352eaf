"""``make bench``: run every benchmark, print the table, write bench/results.json and .md."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from tests.bench import audit, bus, catalog, feeds, ingest, policy, quality
from tests.bench.report import Figure, write_report
from tests.support.kafka_topics import KAFKA_BOOTSTRAP, created_topics_removed
from tests.support.postgres import POSTGRES_URL


def main() -> int:
    figures: list[Figure] = []
    benchmarks: list[tuple[str, Callable[[], Figure | list[Figure]]]] = [
        ("bus/kafka", lambda: bus.kafka_producer(KAFKA_BOOTSTRAP)),
        ("bus/embedded", bus.embedded_producer),
        ("catalog/search-and-get", lambda: catalog.search_and_get(POSTGRES_URL)),
        ("catalog/registration", lambda: catalog.registration(POSTGRES_URL)),
        ("catalog/dcat-export", catalog.dcat_export),
        ("catalog/audit-verification", audit.run),
        ("ingest", ingest.run_all),
        ("policy", policy.run),
        ("feeds", feeds.run_all),
        ("quality", quality.run_all),
    ]
    with created_topics_removed(KAFKA_BOOTSTRAP):
        for name, run in benchmarks:
            print(f"running {name} ...", flush=True)
            result = run()
            figures.extend(result if isinstance(result, list) else [result])
    json_path, md_path = write_report(figures, Path("bench"))
    print(md_path.read_text())
    print(f"written: {json_path}, {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
