"""The faults the demo injects into records, and the share of records that carries each."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    null = "null"
    out_of_range = "out-of-range"
    bad_enum = "bad-enum"
    schema_break = "schema-break"
    duplicate = "duplicate"
    late = "late"


REJECTED_FAULTS = frozenset({Fault.null, Fault.out_of_range, Fault.bad_enum, Fault.schema_break})
"""Faults that break the contract, so ingest sends the record to the dead-letter topic."""


@dataclass(frozen=True)
class FaultRates:
    """The share of records (0 to 1) that carry each fault; together at most 1."""

    null: float = 0.0
    out_of_range: float = 0.0
    bad_enum: float = 0.0
    schema_break: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0

    def __post_init__(self) -> None:
        for kind, rate in self.items():
            if not 0.0 <= rate <= 1.0 or math.isnan(rate):
                raise ValueError(f"the {kind} rate must be between 0 and 1, not {rate}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"the fault rates add up to {self.total:g}; at most 1 (one fault per record)")

    def items(self) -> list[tuple[Fault, float]]:
        return [
            (Fault.null, self.null),
            (Fault.out_of_range, self.out_of_range),
            (Fault.bad_enum, self.bad_enum),
            (Fault.schema_break, self.schema_break),
            (Fault.duplicate, self.duplicate),
            (Fault.late, self.late),
        ]

    @property
    def total(self) -> float:
        return sum(rate for _, rate in self.items())

    @property
    def rejected_share(self) -> float:
        """The share of records ingest is expected to reject."""
        return sum(rate for kind, rate in self.items() if kind in REJECTED_FAULTS)
