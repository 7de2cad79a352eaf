"""The console's contract diff: what a reader sees changed between two versions."""

from __future__ import annotations

from typing import Any

from services.console import contract_diff
from services.console.deps import TEMPLATES


def version(name: str, properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "version": name,
        "record_schema": {"type": "object", "properties": properties, "required": required},
        "sensitive_fields": extra.get("sensitive_fields", {}),
        "primary_key": extra.get("primary_key", ["id"]),
        "sla": extra.get("sla", {"frequency_s": 60.0}),
    }


OLD = version(
    "1.0.0",
    {
        "id": {"type": "string"},
        "phone": {"type": ["string", "null"], "x-citybase-classification": "personal"},
        "status": {"type": "string", "enum": ["open", "closed"]},
        "legacy": {"type": "integer"},
    },
    ["id", "status"],
    sensitive_fields={"phone": {"kind": "partial", "keep_prefix": 3}},
)


def test_added_removed_and_changed_fields_with_what_changed() -> None:
    new = version(
        "1.1.0",
        {
            "id": {"type": "string"},
            "phone": {"type": ["string", "null"], "x-citybase-classification": "personal"},
            "status": {"type": "string", "enum": ["open", "closed", "reopened"]},
            "district": {"type": "string"},
        },
        ["id"],
        sensitive_fields={"phone": {"kind": "hash"}},
        sla={"frequency_s": 30.0},
    )
    diff = contract_diff.diff(OLD, new)
    by_name = {f.name: f for f in diff.fields}
    assert set(by_name) == {"phone", "status", "legacy", "district"}
    assert by_name["legacy"].status == "removed"
    assert by_name["district"].status == "added"
    assert contract_diff.Change("required", None, False) in by_name["district"].changes
    status = {c.what: (c.old, c.new) for c in by_name["status"].changes}
    assert status == {
        "allowed values": (["open", "closed"], ["open", "closed", "reopened"]),
        "required": (True, False),
    }
    assert [(c.what, c.old, c.new) for c in by_name["phone"].changes] == [("masking", "partial", "hash")]
    assert diff.changes == [contract_diff.Change("SLA expected every (s)", 60.0, 30.0)]
    assert not diff.empty


def test_the_same_version_twice_has_no_difference() -> None:
    assert contract_diff.diff(OLD, OLD).empty


def test_field_rows_carry_sensitivity_and_keys() -> None:
    rows = {row["name"]: row for row in contract_diff.field_rows(OLD)}
    assert rows["phone"]["sensitive"] is True
    assert rows["phone"]["masking"] == "partial"
    assert rows["phone"]["type"] == "string | null"
    assert rows["id"]["primary_key"] is True
    assert rows["status"]["sensitive"] is False
    assert rows["legacy"]["required"] is False


def test_the_page_shows_chinese_text_as_itself_still_escaped_for_html() -> None:
    old = version("1.0.0", {"id": {"type": "string", "description": "检查编号"}}, ["id"])
    new = version("1.1.0", {"id": {"type": "string", "description": "检查编号 <唯一>"}}, ["id"])
    (change,) = contract_diff.diff(old, new).fields[0].changes
    assert contract_diff.shown(change.new) == '"检查编号 <唯一>"'
    page = TEMPLATES.env.from_string("{{ value|json }}").render(value=change.new)
    assert page == "&#34;检查编号 &lt;唯一&gt;&#34;"
    assert "\\u" not in page
