"""The audit page's rows: a sentence per entry, the deliveries of a subscription grouped."""

from __future__ import annotations

from typing import Any

from services.common import i18n
from services.console.audit_view import audit_rows


def entry(seq: int, action: str, **fields: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": f"2026-12-07T10:{seq:02d}:00.123456+00:00",
        "actor_id": fields.pop("actor_id", "approver-health"),
        "actor_kind": "approver",
        "action": action,
        "resource_type": fields.pop("resource_type", "access_request"),
        "resource_id": fields.pop("resource_id", "r-1"),
        "outcome": fields.pop("outcome", "success"),
        "dataset_id": fields.pop("dataset_id", "health.outpatient-visits"),
        "scenario_id": fields.pop("scenario_id", "clinic-finder"),
        "details": fields.pop("details", {}),
        **fields,
    }


def delivery(seq: int, records: int, subscription: str = "s-1", outcome: str = "success") -> dict[str, Any]:
    return entry(
        seq,
        "feed.deliver",
        actor_id="clinic-finder",
        resource_type="subscription",
        resource_id=subscription,
        outcome=outcome,
        details={"records": records, "grant_id": "g-1"},
    )


def test_each_entry_reads_as_a_sentence_with_its_action_kept() -> None:
    rows = audit_rows([entry(3, "access_request.approve"), entry(2, "grant.revoke", resource_id="g-1")])
    assert [r.summary for r in rows] == [
        "approver-health approved access request r-1",
        "approver-health revoked grant g-1",
    ]
    assert [r.first["action"] for r in rows] == ["access_request.approve", "grant.revoke"]


def test_a_refusal_and_an_unknown_action_still_read_plainly() -> None:
    refused = entry(5, "contract_version.register", outcome="denied", actor_id=None, resource_id="x.y@1.0.0")
    unknown = entry(4, "widget.polish", resource_type="widget", resource_id="w-9")
    rows = audit_rows([refused, unknown])
    assert rows[0].summary == "Refused: someone unauthenticated registered contract version x.y@1.0.0"
    assert rows[1].summary == "approver-health: widget.polish on widget w-9"


def test_consecutive_deliveries_of_one_subscription_are_one_row_that_keeps_every_entry() -> None:
    entries = [
        delivery(10, 100),
        delivery(9, 50),
        delivery(8, 25),
        entry(7, "grant.create", resource_id="g-1"),
        delivery(6, 5),
        delivery(5, 5, subscription="s-2"),
        delivery(4, 0, subscription="s-2", outcome="denied"),
    ]
    rows = audit_rows(entries)
    assert [r.seq for r in rows] == ["8–10", "7", "6", "5", "4"]
    assert rows[0].summary == (
        "clinic-finder received 175 records of health.outpatient-visits in 3 deliveries (subscription s-1)"
    )
    assert rows[2].summary.endswith("in 1 delivery (subscription s-1)")
    assert rows[4].summary == (
        "clinic-finder was refused 1 delivery of health.outpatient-visits (subscription s-2)"
    )
    # nothing is hidden: the group's details name each entry
    assert [line.split()[0] for line in rows[0].details.splitlines()] == ["#10", "#9", "#8"]
    assert sum(len(r.entries) for r in rows) == len(entries)


def test_the_rows_speak_chinese_too() -> None:
    with i18n.use("zh_CN"):
        rows = audit_rows([entry(3, "access_request.approve"), delivery(2, 7), delivery(1, 3)])
        assert rows[0].summary == "approver-health 批准了访问申请 r-1"
        assert (
            rows[1].summary == "clinic-finder 分 2 次收到 health.outpatient-visits 的 10 条记录（订阅 s-1）"
        )


def test_an_open_data_download_reads_as_a_sentence_in_both_languages() -> None:
    download = entry(
        7,
        "open.snapshot",
        actor_id=None,
        resource_type="dataset",
        resource_id="transport.bus-arrivals",
        scenario_id=None,
        details={"records": 1000, "format": "csv", "client": "0" * 32},
    )
    (row,) = audit_rows([download])
    assert (
        row.summary
        == "someone unauthenticated downloaded the latest records of open dataset transport.bus-arrivals"
    )
    with i18n.use("zh_CN"):
        (row,) = audit_rows([download])
    assert row.summary == "未认证的访问者 下载了开放数据集 transport.bus-arrivals 的最新记录"
