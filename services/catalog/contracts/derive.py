"""The derivations of a contract under one name, for ``citybase contracts`` (``citybase/contracts_cli.py``).

Each derivation lives in the module of its responsibility (:mod:`.json_schema`, :mod:`.policy`,
:mod:`.sla`, :mod:`.expectations`) and code in ``services/`` imports it from there. This module
keeps the public path the CLI imports and import-linter lists for it.
"""

from services.catalog.contracts.expectations import expectation_suite
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.policy import dataset_policy, primary_key, sensitive_fields
from services.catalog.contracts.sla import sla_targets

__all__ = [
    "dataset_policy",
    "expectation_suite",
    "primary_key",
    "record_schema",
    "sensitive_fields",
    "sla_targets",
]
