"""Data contracts: ODCS v3 documents in, everything the platform derives from them out.

- :mod:`.odcs` parses and validates a submitted contract (YAML or JSON) into a
  :class:`ParsedContract`, or raises :class:`ContractInvalid` / :class:`ContractTooLarge` with a
  JSON Pointer per error.
- :mod:`.derive` turns a parsed contract into the per-record JSON Schema ingest validates with,
  the primary key, the sensitive fields and their masking, the SLA targets, the dataset policy
  and the Great Expectations suite quality runs; pure functions, so every service derives the
  same thing from the same contract.
- :mod:`.compatibility` compares record schemas of successive versions under a dataset's mode.
- Above them: :mod:`.service` registers, checks and reads a dataset's contract versions (with
  their derivations), :mod:`.api` its HTTP routes.
- Below them: :mod:`.parsed` (:class:`ParsedContract`, :class:`SemanticVersion`), :mod:`.syntax`
  (the guarded YAML loader) and :mod:`.exceptions`. Imports run one way: ``odcs`` uses
  ``derive`` (its convention checks), ``derive`` uses only the modules below.

The example contracts live in ``contracts/datasets/<dataset-id>/<version>.yaml``.
"""

from services.catalog.contracts.derive import (
    DatasetPolicy,
    MaskingRule,
    SchemaObjectNotFound,
    SlaTargets,
    dataset_policy,
    expectation_class_name,
    expectation_suite,
    primary_key,
    record_schema,
    schema_object,
    sensitive_fields,
    sla_targets,
)
from services.catalog.contracts.odcs import (
    MAX_CONTRACT_BYTES,
    ContractInvalid,
    ContractTooLarge,
    ParsedContract,
    SemanticVersion,
    compare_versions,
    parse_contract,
)

__all__ = [
    "MAX_CONTRACT_BYTES",
    "ContractInvalid",
    "ContractTooLarge",
    "DatasetPolicy",
    "MaskingRule",
    "ParsedContract",
    "SchemaObjectNotFound",
    "SemanticVersion",
    "SlaTargets",
    "compare_versions",
    "dataset_policy",
    "expectation_class_name",
    "expectation_suite",
    "parse_contract",
    "primary_key",
    "record_schema",
    "schema_object",
    "sensitive_fields",
    "sla_targets",
]
