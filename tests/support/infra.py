"""Private Kafka brokers and PostgreSQL servers that a fault test may kill.

The shared broker (127.0.0.1:9092) and PostgreSQL (127.0.0.1:5432) serve everyone's tests, so a
test that kills or stops one starts its own on free ports in a temporary directory: a single-node
KRaft broker from the jars ``deploy/local/kafka.sh`` caches, and a PostgreSQL cluster from
Debian's server binaries. Both restart on the same data directory and ports, which is what a
crash and recovery look like.

When the jars, java or the PostgreSQL binaries are missing, :func:`require` skips on a
developer's machine and fails under ``CI=true``, like the shared services in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.http import free_port

REPO = Path(__file__).resolve().parents[2]
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")


def require(available: bool, message: str) -> None:
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def port_open(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise AssertionError(f"{what} within {timeout_s:.0f}s\n{tail}")


def _kill9(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


# --- Kafka ----------------------------------------------------------------------------------------


def kafka_lib_dir() -> Path:
    infra = Path(os.environ.get("CITYBASE_INFRA_DIR", Path.home() / ".cache" / "citybase" / "infra"))
    return infra / f"kafka-{KAFKA_VERSION}" / "lib"


def kafka_available() -> tuple[bool, str]:
    lib = kafka_lib_dir()
    if shutil.which("java") is None:
        return False, "java is not installed (make up-infra installs it)"
    if not glob.glob(str(lib / "kafka_2.13-*.jar")):
        return False, f"no Kafka jars in {lib} (make up-infra caches them)"
    return True, ""


class PrivateKafka:
    """A single-node KRaft broker of one test module, on free ports, that may be killed with -9."""

    def __init__(self, root: Path, heap: str = "-Xmx384m") -> None:
        self.root = root
        self.port = free_port()
        self.controller_port = free_port()
        self.data = root / "data"
        self.logs = root / "logs"
        self.config = root / "server.properties"
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []
        """Seconds each start took until the broker answered."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str, heap: str = "-Xmx256m") -> list[str]:
        return [
            "java",
            heap,
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs}",
            f"-Dlog4j2.configurationFile={REPO / 'deploy/local/kafka/log4j2.xml'}",
            "-cp",
            f"{kafka_lib_dir()}/*",
            *args,
        ]

    def format(self) -> None:
        self.data.mkdir(parents=True)
        self.logs.mkdir(parents=True)
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    "inter.broker.listener.name=PLAINTEXT",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data}",
                    "num.network.threads=2",
                    "num.io.threads=2",
                    "num.partitions=3",
                    "default.replication.factor=1",
                    "min.insync.replicas=1",
                    "auto.create.topics.enable=true",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    # a killed broker re-registers once its old session expired: keep that short
                    "broker.heartbeat.interval.ms=1000",
                    "broker.session.timeout.ms=4000",
                    "",
                ]
            )
        )
        formatted = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                _kafka_cluster_id(),
                "-c",
                str(self.config),
            ),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert formatted.returncode == 0, formatted.stdout.decode() + formatted.stderr.decode()

    def start(self, timeout_s: float = 150.0) -> None:
        """Start the broker (on the same data and ports as before) and wait until it takes writes."""
        assert self.process is None or self.process.poll() is not None, "the broker is running"
        started = time.monotonic()
        out = (self.logs / "kafka.out").open("ab")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.config), heap=self.heap),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        process = self.process

        def up() -> bool:
            assert process.poll() is None, "the broker exited: " + _tail(self.logs / "server.log")
            return port_open(self.port)

        _wait(up, timeout_s, "the private Kafka broker did not listen", self.logs / "server.log")
        _wait(
            lambda: self._answers(),
            max(10.0, timeout_s - (time.monotonic() - started)),
            "the private Kafka broker did not answer",
            self.logs / "server.log",
        )
        self.starts.append(time.monotonic() - started)

    def _answers(self) -> bool:
        from kafka import KafkaAdminClient

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        except Exception:
            return False
        try:
            admin.list_topics()
            return True
        except Exception:
            return False
        finally:
            admin.close()

    def kill9(self) -> None:
        """SIGKILL the broker, and wait until its ports are closed."""
        assert self.process is not None
        _kill9(self.process)
        _wait(
            lambda: not port_open(self.port) and not port_open(self.controller_port),
            15,
            "the killed broker's ports did not close",
        )

    def stop(self) -> None:
        if self.process is not None:
            _kill9(self.process)


def _kafka_cluster_id() -> str:
    # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"({path} missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- PostgreSQL -----------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    return Path(found[-1]).parent if found else None


def postgres_available() -> tuple[bool, str]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists() or not (bin_dir / "pg_ctl").exists():
        return False, "PostgreSQL server binaries are not installed (make up-infra installs them)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False, "running as root and there is no postgres user to run a private server"
    return True, ""


class PrivatePostgres:
    """A PostgreSQL cluster of one test module on a free port of 127.0.0.1, stopped on purpose.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` user and
    every server command runs through ``runuser``.
    """

    def __init__(self) -> None:
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="citybase-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.user = "citybase"
        self.password = "citybase"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}\n{_tail(self.log)}"
        return done

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        password_file = self.root / "pw"
        password_file.write_text(self.password)
        if self._as_postgres:
            shutil.chown(password_file, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nshared_buffers = 32MB\nmax_connections = 50\n"
            )

    def start(self, timeout_s: float = 60) -> float:
        started = time.monotonic()
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(timeout_s)),
            "start",
            timeout_s=timeout_s + 10,
        )
        return time.monotonic() - started

    def stop(self, mode: str = "immediate") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
