"""The audit trail as people read it: one row per entry with a sentence that says what happened,
the details on demand, and the deliveries of a subscription grouped into one row.

The catalog's ``GET /v1/audit`` answers the entries as the chain stores them (newest first); this
module only arranges them for the page. A group of deliveries keeps every entry's sequence number,
so nothing in the trail is hidden: the group's details list each one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.common.i18n import N_, gettext, ngettext
from services.console.labels import label

SENTENCES: dict[str, str] = {
    "access_request.create": N_("%(actor)s asked for access to %(dataset)s (request %(resource)s)"),
    "access_request.approve": N_("%(actor)s approved access request %(resource)s"),
    "access_request.reject": N_("%(actor)s rejected access request %(resource)s"),
    "access_request.withdraw": N_("%(actor)s withdrew access request %(resource)s"),
    "access_request.read": N_("%(actor)s read access request %(resource)s"),
    "grant.create": N_("%(actor)s granted %(scenario)s access to %(dataset)s (grant %(resource)s)"),
    "grant.update": N_("%(actor)s changed the terms of grant %(resource)s"),
    "grant.suspend": N_("%(actor)s suspended grant %(resource)s"),
    "grant.resume": N_("%(actor)s resumed grant %(resource)s"),
    "grant.revoke": N_("%(actor)s revoked grant %(resource)s"),
    "grant.unmask": N_("%(actor)s allowed a field of grant %(resource)s in clear"),
    "grant.read": N_("%(actor)s read grant %(resource)s"),
    "grant.list": N_("%(actor)s listed grants"),
    "scenario.create": N_("%(actor)s created scenario %(resource)s"),
    "scenario.update": N_("%(actor)s changed scenario %(resource)s"),
    "dataset.create": N_("%(actor)s created dataset %(resource)s"),
    "dataset.update": N_("%(actor)s changed dataset %(resource)s"),
    "contract_version.register": N_("%(actor)s registered contract version %(resource)s"),
    "domain.create": N_("%(actor)s created domain %(resource)s"),
    "department.create": N_("%(actor)s created department %(resource)s"),
    "principal.create": N_("%(actor)s created principal %(resource)s"),
    "api_key.issue": N_("%(actor)s issued API key %(resource)s"),
    "api_key.revoke": N_("%(actor)s revoked API key %(resource)s"),
    "feed.replay": N_("%(actor)s replayed subscription %(resource)s"),
    "open.snapshot": N_("%(actor)s downloaded the latest records of open dataset %(resource)s"),
}
"""What each action means, as a sentence. An action not listed reads as its name."""
FALLBACK = N_("%(actor)s: %(action)s on %(resource_type)s %(resource)s")
REFUSED = N_("Refused: %(sentence)s")
FAILED = N_("Failed: %(sentence)s")
NOBODY = N_("someone unauthenticated")


@dataclass
class AuditRow:
    """One row of the page: an entry, or the consecutive deliveries of one subscription."""

    first: Mapping[str, Any]
    entries: list[Mapping[str, Any]] = field(default_factory=list)
    summary: str = ""

    @property
    def is_group(self) -> bool:
        return len(self.entries) > 1

    @property
    def seq(self) -> str:
        seqs = [int(e["seq"]) for e in self.entries]
        return str(seqs[0]) if len(seqs) == 1 else f"{min(seqs)}–{max(seqs)}"

    @property
    def at(self) -> str:
        return str(self.first.get("at") or "")

    @property
    def details(self) -> str:
        """The stored details, readable: the entry's own, or one line per delivery of a group."""
        if not self.is_group:
            return json.dumps(self.first.get("details") or {}, ensure_ascii=False, indent=2, sort_keys=True)
        lines = [
            f"#{e['seq']} {e.get('at', '')} "
            + json.dumps(e.get("details") or {}, ensure_ascii=False, sort_keys=True)
            for e in self.entries
        ]
        return "\n".join(lines)


def _sentence(entry: Mapping[str, Any]) -> str:
    values = {
        "actor": entry.get("actor_id") or gettext(NOBODY),
        "resource": entry.get("resource_id") or "",
        "resource_type": label(entry.get("resource_type")),
        "action": entry.get("action") or "",
        "dataset": entry.get("dataset_id") or "",
        "scenario": entry.get("scenario_id") or "",
    }
    template = SENTENCES.get(str(entry.get("action")), FALLBACK)
    sentence = gettext(template) % values
    outcome = entry.get("outcome")
    if outcome == "denied":
        return gettext(REFUSED) % {"sentence": sentence}
    if outcome == "failed":
        return gettext(FAILED) % {"sentence": sentence}
    return sentence


def _delivery_summary(entries: Sequence[Mapping[str, Any]]) -> str:
    first = entries[0]
    records = sum(int((e.get("details") or {}).get("records") or 0) for e in entries)
    values = {
        "scenario": first.get("scenario_id") or first.get("actor_id") or "",
        "dataset": first.get("dataset_id") or "",
        "subscription": first.get("resource_id") or "",
        "records": records,
        "num": len(entries),
    }
    if first.get("outcome") == "denied":
        text = ngettext(
            "%(scenario)s was refused %(num)d delivery of %(dataset)s (subscription %(subscription)s)",
            "%(scenario)s was refused %(num)d deliveries of %(dataset)s (subscription %(subscription)s)",
            len(entries),
        )
    else:
        text = ngettext(
            "%(scenario)s received %(records)s records of %(dataset)s in %(num)d delivery"
            " (subscription %(subscription)s)",
            "%(scenario)s received %(records)s records of %(dataset)s in %(num)d deliveries"
            " (subscription %(subscription)s)",
            len(entries),
        )
    return text % values


def _same_delivery_run(row: AuditRow, entry: Mapping[str, Any]) -> bool:
    first = row.first
    return (
        first.get("action") == entry.get("action") == "feed.deliver"
        and first.get("resource_id") == entry.get("resource_id")
        and first.get("outcome") == entry.get("outcome")
    )


def audit_rows(entries: Sequence[Mapping[str, Any]]) -> list[AuditRow]:
    """The page's rows, in the order given (newest first), consecutive deliveries of one
    subscription with one outcome in one row."""
    rows: list[AuditRow] = []
    for entry in entries:
        if rows and _same_delivery_run(rows[-1], entry):
            rows[-1].entries.append(entry)
            continue
        rows.append(AuditRow(first=entry, entries=[entry]))
    for row in rows:
        row.summary = (
            _delivery_summary(row.entries)
            if row.first.get("action") == "feed.deliver"
            else _sentence(row.first)
        )
    return rows
