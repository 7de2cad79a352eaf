"""What changed between two contract versions of a dataset, field by field, for people to read.

The catalog decides compatibility (and refuses a breaking version with its own report); this diff
only shows the difference between two registered versions, from their record schemas, sensitive
fields, primary keys and SLA targets as the catalog serves them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.i18n import N_, _
from services.console.labels import label

# JSON Schema keywords a reader cares about, with the words shown for them.
WATCHED = {
    "type": N_("type"),
    "format": N_("format"),
    "enum": N_("allowed values"),
    "pattern": N_("pattern"),
    "minimum": N_("minimum"),
    "maximum": N_("maximum"),
    "minLength": N_("min length"),
    "maxLength": N_("max length"),
    "x-citybase-classification": N_("classification"),
    "description": N_("description"),
}


@dataclass(frozen=True)
class Change:
    what: str
    old: Any
    new: Any


@dataclass(frozen=True)
class FieldDiff:
    name: str
    status: str
    """added, removed or changed."""
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class ContractDiff:
    old_version: str
    new_version: str
    fields: list[FieldDiff]
    changes: list[Change]
    """Dataset-wide: primary key, SLA targets."""

    @property
    def empty(self) -> bool:
        return not self.fields and not self.changes


def field_rows(version: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fields of one contract version, in schema order, with what the console shows of each."""
    schema = version.get("record_schema") or {}
    required = set(schema.get("required") or [])
    sensitive = version.get("sensitive_fields") or {}
    primary_key = set(version.get("primary_key") or [])
    rows = []
    for name, prop in (schema.get("properties") or {}).items():
        mask = sensitive.get(name)
        rows.append(
            {
                "name": name,
                "type": _type_of(prop),
                "required": name in required,
                "primary_key": name in primary_key,
                "classification": prop.get("x-citybase-classification"),
                "sensitive": mask is not None,
                "masking": (mask or {}).get("kind") if isinstance(mask, Mapping) else mask,
                "description": prop.get("description", ""),
            }
        )
    return rows


def _type_of(prop: Mapping[str, Any]) -> str:
    kind = prop.get("type", "any")
    text = " | ".join(kind) if isinstance(kind, list) else str(kind)
    return f"{text} ({prop['format']})" if "format" in prop else text


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> ContractDiff:
    """Fields added, removed or changed from ``old`` to ``new`` (two ``ContractVersionRead``)."""
    old_schema, new_schema = old.get("record_schema") or {}, new.get("record_schema") or {}
    old_props = old_schema.get("properties") or {}
    new_props = new_schema.get("properties") or {}
    old_required, new_required = set(old_schema.get("required") or []), set(new_schema.get("required") or [])
    old_masks, new_masks = old.get("sensitive_fields") or {}, new.get("sensitive_fields") or {}
    fields: list[FieldDiff] = []
    for name in [*old_props, *(n for n in new_props if n not in old_props)]:
        if name not in new_props:
            fields.append(FieldDiff(name, "removed"))
            continue
        if name not in old_props:
            fields.append(FieldDiff(name, "added", _describe(new_props[name], name in new_required)))
            continue
        changes = [
            Change(_(words), old_props[name].get(key), new_props[name].get(key))
            for key, words in WATCHED.items()
            if old_props[name].get(key) != new_props[name].get(key)
        ]
        if (name in old_required) != (name in new_required):
            changes.append(Change(_("required"), name in old_required, name in new_required))
        if old_masks.get(name) != new_masks.get(name):
            changes.append(Change(_("masking"), _mask(old_masks.get(name)), _mask(new_masks.get(name))))
        if changes:
            fields.append(FieldDiff(name, "changed", changes))
    changes = []
    if list(old.get("primary_key") or []) != list(new.get("primary_key") or []):
        changes.append(Change(_("primary key"), old.get("primary_key"), new.get("primary_key")))
    old_sla, new_sla = old.get("sla") or {}, new.get("sla") or {}
    changes.extend(
        Change(_("SLA %(target)s") % {"target": label(key)}, old_sla.get(key), new_sla.get(key))
        for key in sorted({*old_sla, *new_sla})
        if old_sla.get(key) != new_sla.get(key)
    )
    return ContractDiff(str(old.get("version")), str(new.get("version")), fields, changes)


def shown(value: Any) -> str:
    """A schema value as JSON a person reads: Chinese and other non-ASCII text as itself, not as
    ``\\u`` escapes (the page escapes it for HTML like any other text)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _describe(prop: Mapping[str, Any], required: bool) -> list[Change]:
    described = [Change(_(words), None, prop[key]) for key, words in WATCHED.items() if key in prop]
    return [*described, Change(_("required"), None, required)]


def _mask(mask: Any) -> Any:
    return mask.get("kind") if isinstance(mask, Mapping) else mask
