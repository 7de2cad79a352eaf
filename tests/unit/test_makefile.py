"""`make help` lists every documented target, in plain text when its output is not a terminal."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_help_into_a_pipe_is_plain_text_listing_every_documented_target() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "\x1b" not in result.stdout
    documented = re.findall(r"^([a-zA-Z_-]+):.*## ", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert documented
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert listed == documented
