"""Feeds' read model of ``platform.catalog``: datasets (their topics, classification and public
listing), the sensitive fields of their contract versions, grants, principals and keys.

Feeds never ask the catalog anything while delivering: a revocation, a suspension or a narrowed
grant arrives as a grant event, replaces the grant's state here, and the next check of any
delivery in this process sees it. A grant keeps only its highest version (events may be replayed
or arrive twice). Expiry is not an event: :meth:`GrantState.refusal` compares ``expires_at`` with
the clock on every check.

A grant's :class:`~services.common.policy.Policy` is compiled once per grant version, on first
use, and cached, with the grant's own hash key (random, made by the catalog, carried by the grant
event): feeds hold no secret from which a hash key could be derived.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common import catalog_events
from services.common.auth import KeyRing
from services.common.bus import Message
from services.common.envelope import EnvelopeError, parse_time
from services.common.i18n import N_, Sentence
from services.common.policy import GrantTerms, Policy, compile_policy, hash_key_of
from services.common.topics import records_topic

log = logging.getLogger(__name__)


def _moment(data: dict[str, Any], key: str) -> datetime:
    """A grant's time field; ValueError naming the field when it is missing or not a time."""
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"grant {key} must be an RFC 3339 time, not {value!r}")
    return parse_time(value)


PUBLISHED_STATUSES = frozenset({"active", "deprecated"})


@dataclass(frozen=True, slots=True)
class DatasetState:
    id: str
    status: str
    records_topic: str
    classification: str | None = None
    publicly_listed: bool = False
    """As the dataset event says; an event without it (an older catalog) is not public."""

    @property
    def open_to_all(self) -> bool:
        """Whether anyone may download a snapshot of its records without a key: published,
        publicly listed and classified ``open``."""
        return self.status in PUBLISHED_STATUSES and self.publicly_listed and self.classification == "open"


@dataclass(frozen=True)
class GrantState:
    """One version of a grant, as the catalog announced it."""

    id: str
    version: int
    scenario_id: str
    dataset_id: str
    status: str
    valid_from: datetime
    expires_at: datetime
    records_per_day: int | None
    terms: GrantTerms
    data: dict[str, Any] = field(repr=False)
    hash_key: bytes | None = field(default=None, repr=False)
    """The key of the grant's ``hash`` masks; None for an event without one (hashed fields are
    then withheld)."""

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> GrantState:
        quota = data.get("quota") or None
        records_per_day = quota.get("records_per_day") if isinstance(quota, dict) else None
        return cls(
            id=data["id"],
            version=int(data["version"]),
            scenario_id=data["scenario_id"],
            dataset_id=data["dataset_id"],
            status=data["status"],
            valid_from=_moment(data, "valid_from"),
            expires_at=_moment(data, "expires_at"),
            records_per_day=int(records_per_day) if records_per_day is not None else None,
            terms=GrantTerms.from_event(data),
            data={key: value for key, value in data.items() if key != "hash_key"},
            hash_key=hash_key_of(data),
        )

    def effective_status(self, now: datetime) -> str:
        """active, suspended, revoked, expired (by the clock) or pending (not valid yet)."""
        if self.status == "revoked":
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.status != "active":
            return self.status
        if self.valid_from > now:
            return "pending"
        return "active"

    def refusal(self, now: datetime) -> Sentence | None:
        """Why nothing may be delivered under this grant now, or None when it allows delivery."""
        status = self.effective_status(now)
        if status == "active":
            return None
        if status == "expired":
            return Sentence(
                N_("grant %(id)s expired at %(expired)s"), id=self.id, expired=self.expires_at.isoformat()
            )
        if status == "pending":
            return Sentence(
                N_("grant %(id)s is valid from %(valid_from)s"),
                id=self.id,
                valid_from=self.valid_from.isoformat(),
            )
        return Sentence(N_("grant %(id)s is %(status)s"), id=self.id, status=status)


GrantListener = Callable[[GrantState], None]


class FeedsCatalog:
    """Datasets, grants and the key ring, from ``platform.catalog``.

    Written by the read model's thread only; read from any thread. Entries are replaced whole,
    never mutated, so a reader sees either the old or the new state of a grant.
    """

    def __init__(self, keyring: KeyRing | None = None) -> None:
        self.keyring = keyring or KeyRing()
        self._datasets: dict[str, DatasetState] = {}
        self._sensitive: dict[str, dict[str, frozenset[str]]] = {}
        """dataset id -> contract version -> the paths its contract marks sensitive."""
        self._grants: dict[str, GrantState] = {}
        self._by_scenario_dataset: dict[tuple[str, str], set[str]] = {}
        self._policies: dict[tuple[str, int], Policy] = {}
        self._lock = threading.Lock()
        self._listeners: list[GrantListener] = []
        self.skipped = 0

    def on_grant_changed(self, listener: GrantListener) -> None:
        self._listeners.append(listener)

    # --- applying events (the read model's thread) -----------------------------------------

    def apply(self, message: Message) -> None:
        try:
            self.keyring.apply(message)
            event = catalog_events.read_catalog_event(message)
        except (EnvelopeError, KeyError, TypeError, ValueError) as error:
            self.skipped += 1
            log.warning("skipping unreadable record %s@%s: %s", message.topic, message.offset, error)
            return
        if event is None:
            if message.value is None:
                self._tombstone(message.key)
            return
        event_type, payload = event
        try:
            if event_type == catalog_events.DATASET:
                topics = payload.get("topics") or {}
                dataset = DatasetState(
                    id=payload["id"],
                    status=payload["status"],
                    records_topic=topics.get("records") or records_topic(payload["id"]),
                    classification=payload.get("classification"),
                    publicly_listed=payload.get("publicly_listed") is True,
                )
                with self._lock:
                    self._datasets[dataset.id] = dataset
            elif event_type == catalog_events.CONTRACT_VERSION:
                sensitive = payload["sensitive_fields"]
                if not isinstance(sensitive, dict):
                    raise TypeError(f"sensitive_fields must be an object, not {sensitive!r}")
                with self._lock:
                    versions = dict(self._sensitive.get(payload["dataset_id"], {}))
                    versions[str(payload["version"])] = frozenset(str(path) for path in sensitive)
                    self._sensitive[payload["dataset_id"]] = versions
            elif event_type == catalog_events.GRANT:
                self._apply_grant(GrantState.from_event(payload))
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            # platform.catalog is shared: one malformed event must not stop the read model.
            self.skipped += 1
            log.warning("skipping malformed %s event at offset %s: %s", event_type, message.offset, error)

    def _apply_grant(self, grant: GrantState) -> None:
        known = self._grants.get(grant.id)
        if known is not None and known.version >= grant.version:
            return  # a replay, or an older version arriving late
        with self._lock:
            self._grants[grant.id] = grant
            self._by_scenario_dataset.setdefault((grant.scenario_id, grant.dataset_id), set()).add(grant.id)
            if known is not None:
                self._policies.pop((known.id, known.version), None)
        for listener in self._listeners:
            try:
                listener(grant)
            except Exception:
                log.exception("a grant listener failed")

    def _tombstone(self, key: bytes | None) -> None:
        text = key.decode("utf-8", "replace") if key else ""
        kind, _, entity = text.partition(":")
        with self._lock:
            if kind == "dataset":
                self._datasets.pop(entity, None)
            elif kind == "contract":
                dataset_id, _, version = entity.rpartition(":")
                versions = dict(self._sensitive.get(dataset_id, {}))
                versions.pop(version, None)
                self._sensitive[dataset_id] = versions
            elif kind == "grant":
                grant = self._grants.pop(entity, None)
                if grant is not None:
                    self._by_scenario_dataset.get((grant.scenario_id, grant.dataset_id), set()).discard(
                        grant.id
                    )

    # --- reading (any thread) ---------------------------------------------------------------

    def dataset(self, dataset_id: str) -> DatasetState | None:
        return self._datasets.get(dataset_id)

    def sensitive_fields(self, dataset_id: str) -> frozenset[str] | None:
        """Every path a contract version of the dataset marks sensitive (the union over its
        versions: a record written under an older version keeps that version's sensitive fields),
        or None while no contract version of it is known."""
        versions = self._sensitive.get(dataset_id)
        if not versions:
            return None
        return frozenset().union(*versions.values())

    def grant(self, grant_id: str) -> GrantState | None:
        return self._grants.get(grant_id)

    def grants_of(self, scenario_id: str, dataset_id: str) -> list[GrantState]:
        with self._lock:
            ids = list(self._by_scenario_dataset.get((scenario_id, dataset_id), ()))
        return [grant for grant in (self._grants.get(i) for i in ids) if grant is not None]

    def usable_grant(self, scenario_id: str, dataset_id: str, now: datetime) -> GrantState | None:
        """The grant that lets the scenario receive the dataset now (the one lasting longest)."""
        usable = [g for g in self.grants_of(scenario_id, dataset_id) if g.refusal(now) is None]
        return max(usable, key=lambda g: (g.expires_at, g.version), default=None)

    def policy(self, grant: GrantState) -> Policy:
        """The compiled policy of this grant version (compiled once, then cached)."""
        key = (grant.id, grant.version)
        policy = self._policies.get(key)
        if policy is None:
            if grant.hash_key is None and any(mask.kind == "hash" for mask in grant.terms.masking.values()):
                log.warning(
                    "grant %s v%s has no hash key: its hashed fields are withheld", grant.id, grant.version
                )
            policy = compile_policy(grant.terms, hash_key=grant.hash_key)
            with self._lock:
                self._policies[key] = policy
        return policy

    def __len__(self) -> int:
        return len(self._datasets)
