"""Data contracts: ODCS v3 documents in, everything the platform derives from them out.

- :mod:`.odcs` parses and validates a submitted contract (YAML or JSON) into a
  :class:`ParsedContract`, or raises :class:`ContractInvalid` / :class:`ContractTooLarge` with a
  JSON Pointer per error; :mod:`.odcs_schema` checks it against the ODCS JSON Schema, compiled.
- the derivations, pure functions so that every service derives the same thing from the same
  contract: :mod:`.json_schema` the per-record JSON Schema ingest validates with; :mod:`.policy`
  the primary key, the sensitive fields with their masking and the dataset policy; :mod:`.sla`
  the SLA targets; :mod:`.expectations` the Great Expectations suite quality runs. They read
  citybase's conventions on top of ODCS through :mod:`.conventions`, which
  :mod:`.convention_checks` checks at parse time. :mod:`.derive` names them together for
  ``citybase contracts``.
- :mod:`.compatibility` compares record schemas of successive versions under a dataset's mode.
- Above them: :mod:`.service` registers, checks and reads a dataset's contract versions (with
  their derivations), :mod:`.api` its HTTP routes.
- Below them: :mod:`.parsed` (:class:`ParsedContract`, :class:`SemanticVersion`), :mod:`.syntax`
  (the guarded YAML loader) and :mod:`.exceptions`. Imports run one way, as the layers in
  ``pyproject.toml`` say: ``odcs`` uses ``odcs_schema`` and ``convention_checks``, which uses the derivations, which
  use ``conventions`` and the modules below.

The example contracts live in ``contracts/datasets/<dataset-id>/<version>.yaml``.
"""

from services.catalog.contracts.conventions import MaskingRule, SchemaObjectNotFound, schema_object
from services.catalog.contracts.expectations import expectation_class_name, expectation_suite
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import (
    MAX_CONTRACT_BYTES,
    ContractInvalid,
    ContractTooLarge,
    ParsedContract,
    SemanticVersion,
    compare_versions,
    parse_contract,
)
from services.catalog.contracts.policy import DatasetPolicy, dataset_policy, primary_key, sensitive_fields
from services.catalog.contracts.sla import SlaTargets, sla_targets

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
