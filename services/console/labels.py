"""What the console shows for the platform's own values: statuses, kinds, classifications, score
dimensions, field names of summaries.

The APIs answer with stable machine values (``active``, ``public_service``, ``frequency_s``); a page
shows each as words a person reads, in the request's language. The English words are marked here
for the gettext catalogs and translated where they are shown (the ``label`` filter). A value not
listed is shown as it is: a dataset id or a tag a department chose is not translated.
"""

from __future__ import annotations

from services.common.i18n import N_, gettext

LABELS: dict[str, str] = {
    # statuses of datasets, scenarios, requests, grants, subscriptions
    "draft": N_("draft"),
    "active": N_("active"),
    "deprecated": N_("deprecated"),
    "retired": N_("retired"),
    "suspended": N_("suspended"),
    "pending": N_("pending"),
    "approved": N_("approved"),
    "rejected": N_("rejected"),
    "withdrawn": N_("withdrawn"),
    # states of needs, and how pressing they are
    "held": N_("held for moderation"),
    "offered": N_("dataset offered"),
    "committed": N_("committed"),
    "fulfilled": N_("fulfilled"),
    "declined": N_("declined"),
    "high": N_("high frequency"),
    "medium": N_("medium frequency"),
    "low": N_("low frequency"),
    "urgent": N_("urgent"),
    "pressing": N_("pressing"),
    "normal": N_("normal"),
    "revoked": N_("revoked"),
    "expired": N_("expired"),
    "paused": N_("paused"),
    "all": N_("all"),
    # quality bands of the catalog search's facets
    "quality_high": N_("high quality"),
    "quality_medium": N_("medium quality"),
    "quality_low": N_("low quality"),
    "quality_unscored": N_("not scored yet"),
    # stages of a scenario, states of lists, openings, applicants and proposals
    "proposed": N_("proposed"),
    "building": N_("building"),
    "live": N_("live"),
    "published": N_("published"),
    "decided": N_("decided"),
    "vetted": N_("vetted"),
    "refused": N_("refused"),
    "submitted": N_("submitted"),
    "selected": N_("selected"),
    "not_selected": N_("not selected"),
    "organisation": N_("organisation"),
    # classifications
    "open": N_("open"),
    "conditional": N_("conditional"),
    "restricted": N_("restricted"),
    "sensitive": N_("sensitive"),
    "confidential": N_("confidential"),
    "personal": N_("personal"),
    "pii": N_("personal data"),
    "secret": N_("secret"),
    "public": N_("public"),
    "internal": N_("internal"),
    # principal kinds
    "department": N_("department"),
    "scenario": N_("scenario"),
    "approver": N_("approver"),
    "operator": N_("operator"),
    "admin": N_("administrator"),
    "evaluator": N_("evaluator"),
    # purpose categories
    "public_service": N_("public service"),
    "research": N_("research"),
    "city_operations": N_("city operations"),
    "commercial": N_("commercial"),
    "other": N_("other"),
    # audit outcomes
    "success": N_("success"),
    "denied": N_("denied"),
    "failed": N_("failed"),
    "failure": N_("failure"),
    # webhook pushes
    "delivered": N_("delivered"),
    "dropped": N_("dropped"),
    # masks
    "hash": N_("hash"),
    "redact": N_("redact"),
    "partial": N_("partial"),
    "generalize": N_("generalize"),
    # subscription modes, positions and delivery
    "pull": N_("pull"),
    "webhook": N_("webhook"),
    "earliest": N_("earliest"),
    "latest": N_("latest"),
    "delivering": N_("delivering"),
    "no grant": N_("no grant"),
    "no_grant": N_("no grant"),
    # department kinds
    "commission": N_("commission"),
    "bureau": N_("bureau"),
    "district": N_("district"),
    "enterprise": N_("enterprise"),
    # contract differences
    "added": N_("added"),
    "removed": N_("removed"),
    "changed": N_("changed"),
    # quality dimensions and breaches
    "overall": N_("overall"),
    "validity": N_("validity"),
    "completeness": N_("completeness"),
    "uniqueness": N_("uniqueness"),
    "conformity": N_("conformity"),
    "timeliness": N_("timeliness"),
    "freshness": N_("freshness"),
    "latency": N_("latency"),
    # service levels of a contract, in seconds
    "frequency_s": N_("expected every (s)"),
    "latency_s": N_("latency (s)"),
    "retention_s": N_("retention (s)"),
    # a scenario's usage summary
    "score": N_("score"),
    "active_grants": N_("active grants"),
    "datasets_used": N_("datasets used"),
    "records_consumed": N_("records consumed"),
    "bytes_consumed": N_("bytes consumed"),
    "last_activity": N_("last activity"),
    "days_since_last_activity": N_("days since last activity"),
    # objectives, their results and verdicts
    "dataset-use": N_("every dataset used"),
    "delivered-records": N_("records delivered"),
    "active-days": N_("days with a delivery"),
    "quality-floor": N_("quality floor"),
    "outcome": N_("outcome reported"),
    "at-least": N_("at least"),
    "at-most": N_("at most"),
    "met": N_("met"),
    "not-met": N_("not met"),
    "no-data": N_("no data"),
    "meets": N_("meets its objectives"),
    "partly": N_("partly meets its objectives"),
    "does-not-meet": N_("does not meet its objectives"),
    # indicators: their periods and breakdowns
    "month": N_("month"),
    "week": N_("week"),
    "domain": N_("domain"),
    "purpose": N_("purpose"),
    # audit filters
    "actor": N_("actor"),
    "action": N_("action"),
    "resource_type": N_("resource type"),
    "resource_id": N_("resource id"),
    "dataset": N_("dataset"),
}


def label(value: object) -> str:
    """The words for a platform value in the current language; the value itself when unlisted."""
    text = "" if value is None else str(value)
    english = LABELS.get(text)
    return gettext(english) if english is not None else text
