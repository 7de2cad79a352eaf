"""Synthetic records for the example datasets, valid by default, with faults at chosen rates.

:class:`RecordGenerator` is driven by a dataset's record schema (the JSON Schema the catalog
derives from its contract: ``GET /catalog/v1/datasets/{id}/contract-versions/{v}`` →
``record_schema``), so a new contract version, or a new dataset, keeps working: every field gets a
value of its type, format, enum, bounds, length and pattern. Field *flavours* make the values
look like Shanghai: a flavour is a small function named after a field (``district``,
``hospital_id``, ``licence_number``, ``*_phone``), looked up first for the dataset and then for any
dataset. A flavour's value is used only if it satisfies the field's schema, otherwise the schema
decides; so a contract that narrows a field never makes the demo produce invalid records.

Faults turn a valid record into a realistic bad one, at most one per record, each kind at its own
rate (the rates add up to the share of faulty records):

- ``null``: a required field left out (ingest rejects it: rule ``required``);
- ``out-of-range``: a number beyond its bounds, or a text beyond its length (``maximum``, ...);
- ``bad-enum``: a value outside the enumeration, e.g. ``Pass`` for ``pass`` (``enum``);
- ``schema-break``: a value of the wrong type, or a field the contract does not have (``type``,
  ``additionalProperties``);
- ``duplicate``: the primary key of an earlier record again (valid: quality sees it as uniqueness);
- ``late``: every time of the record hours in the past (valid: quality sees it as timeliness).

Everything random comes from the ``random.Random`` handed in and every time from the ``clock``,
so a seed and a fixed clock give the same records. :func:`stream` sends generated batches at a
rate through any ``publish`` function (the :class:`citybase.client.Publisher` in ``citybase demo``).
"""

from citybase.demo.faults import REJECTED_FAULTS, Fault, FaultRates
from citybase.demo.flavours import (
    ABSENT,
    EXAMPLE_DATASETS,
    FLAVOURS,
    SHANGHAI,
    FieldContext,
    Flavour,
    shanghai_now,
    uscc_check_character,
)
from citybase.demo.generator import GeneratedRecord, RecordGenerator, example_contract_files
from citybase.demo.patterns import PatternNotSupported, sample_pattern
from citybase.demo.schema_values import SchemaValues, fits
from citybase.demo.traffic import BatchFailed, BatchOutcome, DatasetStats, DemoStats, stream

__all__ = [
    "ABSENT",
    "EXAMPLE_DATASETS",
    "FLAVOURS",
    "REJECTED_FAULTS",
    "SHANGHAI",
    "BatchFailed",
    "BatchOutcome",
    "DatasetStats",
    "DemoStats",
    "Fault",
    "FaultRates",
    "FieldContext",
    "Flavour",
    "GeneratedRecord",
    "PatternNotSupported",
    "RecordGenerator",
    "SchemaValues",
    "example_contract_files",
    "fits",
    "sample_pattern",
    "shanghai_now",
    "stream",
    "uscc_check_character",
]
