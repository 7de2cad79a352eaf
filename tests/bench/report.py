"""The benchmark report: figures with their same-run baselines, as JSON and a Markdown table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class Figure:
    """One measured figure and the baseline it is compared with, both from the same run.

    ``higher_is_better`` says how to read the ratio (value / baseline): for throughput a ratio
    of 0.8 means 80% of the baseline's speed; for latency a ratio of 2.0 means twice as slow.
    """

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    aim: str = ""
    higher_is_better: bool = True
    notes: str = ""
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.value / self.baseline_value if self.baseline_value else float("nan")


def machine_info() -> dict[str, str]:
    try:
        kafka = subprocess.run(
            ["bash", "deploy/local/kafka.sh", "version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        kafka = "unknown"
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "system": platform.platform(),
        "kafka": kafka or "unknown",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_report(figures: list[Figure], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    json_path = directory / "results.json"
    # What other runs keep there (``make soak``'s figures under ``soak``) stays.
    kept = json.loads(json_path.read_text()) if json_path.exists() else {}
    kept.update({"machine": info, "figures": [asdict(f) for f in figures]})
    json_path.write_text(json.dumps(kept, indent=2))
    lines = [
        "| figure | value | baseline | baseline value | ratio | aim |",
        "|---|---|---|---|---|---|",
        *(
            f"| {f.name} | {f.value:,.1f} {f.unit} | {f.baseline_name} | {f.baseline_value:,.1f} {f.unit} "
            f"| {f.ratio:.2f} | {f.aim} |"
            for f in figures
        ),
        "",
        "Machine: " + ", ".join(f"{key} {value}" for key, value in info.items()),
        "",
    ]
    md_path = directory / "results.md"
    md_path.write_text("\n".join(lines))
    return json_path, md_path
