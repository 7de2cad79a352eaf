"""The topics a test run creates on the shared local Kafka are deleted when the run ends.

Tests, benchmarks and the soak name their datasets and topics with a random hex suffix, so that
runs never see each other's records. Left behind, a few hundred topics per run become thousands of
partitions, and a broker with ten thousand partitions takes minutes to load them at start.

Only a topic that did not exist when the run began and whose name carries such a suffix is
deleted: the topics of a platform running on the same broker are never touched.
``CITYBASE_TEST_KEEP_TOPICS=1`` keeps everything (to inspect a run).

Several runs may share one broker (two developers' sessions, a benchmark beside the suite). A run
must never delete the topics another run is still using, and a broker cannot say who created a
topic. So the runs on one broker register in a directory of their own (one file per live process):
the first of a group of overlapping runs records the broker's topics as the baseline, a run that
ends while others are live deletes nothing, and the last one to end deletes every test topic
created since the baseline, its own and those of the runs that ended before it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

KAFKA_BOOTSTRAP = os.environ.get("CITYBASE_TEST_KAFKA", "127.0.0.1:9092")
"""The shared Kafka the tests, the soak and the clean-up use."""

_RANDOM_SUFFIX = re.compile(r"(?:^|[.\-_])(?=[0-9a-f]*[0-9])[0-9a-f]{6,}(?:$|[.\-_])")
"""A run of six or more hex digits, at least one of them a digit, between separators."""

_DELETE_BATCH = 100


def is_test_topic(name: str) -> bool:
    """Whether a topic's name carries the random suffix the tests give their topics."""
    return not name.startswith("__") and _RANDOM_SUFFIX.search(name) is not None


def _reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def _admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","), client_id="citybase-test-cleanup", request_timeout_ms=30_000
    )


def topics(bootstrap: str) -> set[str] | None:
    """The broker's topics, or None when it is not reachable (nothing to clean up then)."""
    if not _reachable(bootstrap):
        return None
    admin = _admin(bootstrap)
    try:
        return set(admin.list_topics())
    except KafkaError:
        return None
    finally:
        admin.close()


def delete(bootstrap: str, names: Iterable[str]) -> int:
    """Delete the named topics in batches; returns how many the broker accepted to delete."""
    pending = sorted(names)
    if not pending:
        return 0
    deleted = 0
    admin = _admin(bootstrap)
    try:
        for start in range(0, len(pending), _DELETE_BATCH):
            batch = pending[start : start + _DELETE_BATCH]
            response = admin.delete_topics(batch, timeout_ms=30_000, raise_errors=False)
            deleted += sum(1 for topic in response.get("topics", []) if topic.get("error_code") == 0)
    finally:
        admin.close()
    return deleted


def _registry(bootstrap: str) -> Path:
    """Where the runs sharing ``bootstrap`` register (one directory per broker address)."""
    safe = re.sub(r"[^A-Za-z0-9.]+", "_", bootstrap)
    return Path(tempfile.gettempdir()) / f"citybase-test-runs-{safe}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_runs(registry: Path) -> list[Path]:
    """The entries of the registered runs whose process is alive; entries of dead ones are removed
    (a killed run must not keep the others from cleaning up)."""
    live = []
    for entry in registry.glob("run-*"):
        if _alive(int(entry.name.split("-")[1])):
            live.append(entry)
        else:
            entry.unlink(missing_ok=True)
    return live


@contextmanager
def _locked(registry: Path) -> Iterator[None]:
    with (registry / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def created_topics_removed(bootstrap: str, registry: Path | None = None) -> Iterator[None]:
    """Delete, on exit, the test topics created on the broker while the block ran, once no other
    run on the same broker is live (see the module's docstring). ``registry`` is the directory the
    overlapping runs share; by default one per broker address under the temporary directory."""
    keep = os.environ.get("CITYBASE_TEST_KEEP_TOPICS", "") not in ("", "0")
    present = None if keep else topics(bootstrap)
    if present is None:
        yield
        return
    registry = registry or _registry(bootstrap)
    registry.mkdir(mode=0o700, parents=True, exist_ok=True)
    baseline = registry / "baseline.json"
    me = registry / f"run-{os.getpid()}-{uuid.uuid4().hex}"
    with _locked(registry):
        if not _live_runs(registry) or not baseline.exists():
            baseline.write_text(json.dumps(sorted(present)))
        me.touch()
    try:
        yield
    finally:
        _end_run(bootstrap, registry, me)


def _end_run(bootstrap: str, registry: Path, me: Path) -> None:
    baseline = registry / "baseline.json"
    with _locked(registry):
        me.unlink(missing_ok=True)
        others = _live_runs(registry)
        if others:
            print(
                f"citybase: test topics kept: {len(others)} other test run(s) on {bootstrap} are live; "
                "the last to end deletes them",
                file=sys.stderr,
            )
            return
        known = set(json.loads(baseline.read_text())) if baseline.exists() else None
        baseline.unlink(missing_ok=True)
        after = topics(bootstrap)
        if known is None or after is None:
            return
        created = {name for name in after - known if is_test_topic(name)}
        if not created:
            return
        try:
            deleted = delete(bootstrap, created)
        except KafkaError as error:
            print(f"citybase: could not delete {len(created)} test topics: {error}", file=sys.stderr)
        else:
            print(
                f"citybase: deleted {deleted} of the {len(created)} test topics created since the first "
                "of the overlapping runs began",
                file=sys.stderr,
            )


def main() -> int:
    """``python -m tests.support.kafka_topics``: delete every test topic on the broker, from any run."""
    bootstrap = KAFKA_BOOTSTRAP
    present = topics(bootstrap)
    if present is None:
        print(f"no Kafka broker answers at {bootstrap}", file=sys.stderr)
        return 1
    leftovers = {name for name in present if is_test_topic(name)}
    deleted = delete(bootstrap, leftovers)
    print(
        f"deleted {deleted} of {len(leftovers)} test topics; {len(present) - len(leftovers)} other topics kept"
    )
    return 0 if deleted == len(leftovers) else 1


if __name__ == "__main__":
    sys.exit(main())


def read_event_ids(bootstrap: str, topic: str) -> list[str]:
    """Every ce_id on ``topic``, from the beginning to the end offsets of now."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, request_timeout_ms=30_000
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        assert partitions, f"{topic} has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        ids: list[str] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "could not read the topic to its end in 60 s"
            for messages in consumer.poll(timeout_ms=1000, max_records=5000).values():
                for message in messages:
                    headers = dict(message.headers)
                    ids.append(headers["ce_id"].decode())
        return ids
    finally:
        consumer.close()
