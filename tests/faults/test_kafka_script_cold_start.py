"""``deploy/local/kafka.sh up`` from an empty state directory, as on a new machine.

A machine that has run the script once has ``logs/server.log``, a formatted data dir, a cluster id
and a compiled probe; a new machine has none of them. These tests give the script an empty
``CITYBASE_INFRA_DIR`` of its own (only the jar cache is linked in, so nothing is downloaded twice)
and ports of its own, so they never touch the shared broker on 127.0.0.1:9092.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http import free_port
from tests.support.infra import KAFKA_VERSION, REPO, kafka_lib_dir, port_open, require

SCRIPT = REPO / "deploy" / "local" / "kafka.sh"

pytestmark = pytest.mark.slow


@pytest.fixture
def cold_infra(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An infra dir with the jar cache and nothing else, and free ports; the broker is stopped after."""
    lib = kafka_lib_dir()
    require((lib / ".complete").is_file(), f"no Kafka jar cache at {lib} (run `make up-infra` once)")
    infra = tmp_path / "infra"
    (infra / f"kafka-{KAFKA_VERSION}").mkdir(parents=True)
    (infra / f"kafka-{KAFKA_VERSION}" / "lib").symlink_to(lib, target_is_directory=True)
    env = {
        **os.environ,
        "CITYBASE_INFRA_DIR": str(infra),
        "KAFKA_VERSION": KAFKA_VERSION,
        "KAFKA_PORT": str(free_port()),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_HEAP": "-Xmx256m -Xms128m",
        "KAFKA_START_TIMEOUT": "120",
    }
    assert not (infra / "kafka").exists()
    yield env
    subprocess.run(["bash", str(SCRIPT), "down", "--purge"], env=env, capture_output=True, timeout=120)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_up_starts_a_broker_from_an_empty_state_dir(cold_infra: dict[str, str]) -> None:
    up = run(cold_infra, "up")

    assert up.returncode == 0, f"kafka.sh up exited {up.returncode}:\n{up.stderr}"
    assert f"up on 127.0.0.1:{cold_infra['KAFKA_PORT']}" in up.stderr
    assert port_open(int(cold_infra["KAFKA_PORT"]))
    state = Path(cold_infra["CITYBASE_INFRA_DIR"]) / "kafka"
    assert (state / "data" / "meta.properties").is_file()
    assert run(cold_infra, "status").returncode == 0

    down = run(cold_infra, "down", "--purge")
    assert down.returncode == 0, down.stderr
    assert not state.exists()
    assert not port_open(int(cold_infra["KAFKA_PORT"]))


def test_every_failure_says_what_failed(cold_infra: dict[str, str]) -> None:
    """A start that cannot succeed exits non-zero with an ERROR line naming the cause, never silently."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(cold_infra["KAFKA_CONTROLLER_PORT"])))
        taken.listen()
        up = run(cold_infra, "up")

    assert up.returncode != 0
    assert f"controller port 127.0.0.1:{cold_infra['KAFKA_CONTROLLER_PORT']} is already in use" in up.stderr
    assert "ERROR" in up.stderr
