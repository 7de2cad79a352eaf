"""``make bench``: run every benchmark, print the table, write bench/results.json and .md."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.bench import bus
from tests.bench.report import Figure, write_report
from tests.conftest import KAFKA_BOOTSTRAP


def main() -> int:
    figures: list[Figure] = []
    for name, run in [
        ("bus/kafka", lambda: bus.kafka_producer(KAFKA_BOOTSTRAP)),
        ("bus/embedded", bus.embedded_producer),
    ]:
        print(f"running {name} ...", flush=True)
        figures.append(run())
    json_path, md_path = write_report(figures, Path("bench"))
    print(md_path.read_text())
    print(f"written: {json_path}, {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
