"""The topics a test run creates on the shared local Kafka are deleted when the run ends.

Tests, benchmarks and the soak name their datasets and topics with a random hex suffix, so that
runs never see each other's records. Left behind, a few hundred topics per run become thousands of
partitions, and a broker with ten thousand partitions takes minutes to load them at start.

Only a topic that did not exist when the run began and whose name carries such a suffix is
deleted: the topics of a platform running on the same broker are never touched.
``CITYBASE_TEST_KEEP_TOPICS=1`` keeps everything (to inspect a run, or while another run that
started later shares the broker).
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

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


@contextmanager
def created_topics_removed(bootstrap: str) -> Iterator[None]:
    """Delete, on exit, the test topics created on the broker while the block ran."""
    keep = os.environ.get("CITYBASE_TEST_KEEP_TOPICS", "") not in ("", "0")
    before = None if keep else topics(bootstrap)
    try:
        yield
    finally:
        if before is not None:
            after = topics(bootstrap)
            created = {name for name in (after or set()) - before if is_test_topic(name)}
            if created:
                try:
                    deleted = delete(bootstrap, created)
                except KafkaError as error:
                    print(f"citybase: could not delete {len(created)} test topics: {error}", file=sys.stderr)
                else:
                    print(
                        f"citybase: deleted {deleted} of the {len(created)} topics this run created",
                        file=sys.stderr,
                    )


def main() -> int:
    """``python -m tests.kafka_topics``: delete every test topic on the broker, from any run."""
    bootstrap = os.environ.get("CITYBASE_TEST_KAFKA", "127.0.0.1:9092")
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
