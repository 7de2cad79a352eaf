"""The events quality publishes on ``platform.quality``: the contract between quality and its
readers (the catalog shows the latest score, open breaches and utilization of each dataset). Keyed
by dataset id."""

from __future__ import annotations

from services.common import topics

TOPIC = topics.QUALITY
TOPIC_SPEC = topics.QUALITY_SPEC
SOURCE = "/quality"

SCORE = "city.citybase.quality.score.v1"
"""A closed window's scores: dataset, contract version, overall and per-dimension scores, problems."""
SLA_BREACH = "city.citybase.quality.sla-breach.v1"
"""An SLA breach opened or resolved."""
UTILIZATION = "city.citybase.quality.utilization.v1"
"""A dataset's utilization changed: its score, grants, subscribers, records delivered, last use."""
