"""The contract's Great Expectations suite, compiled once per contract version and run per window.

The catalog publishes each contract version's suite as plain dicts (``{type, kwargs, meta}``, see
the catalog's ``expectation_suite``); quality turns them into a GX 1.x ``ExpectationSuite`` once,
the first time a window of that version is scored, and validates each window's DataFrame with
GX's ephemeral context and the BASIC result format (counts and a few failing values, no row
indexes). An expectation that GX cannot build (an unknown type, kwargs it refuses) is left out
and named in ``problems``; one that fails while running is reported with its error and not
scored: the window is still scored with the rest.

GX is imported on first use, not at import time: it takes seconds to load.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

TABLE_LEVEL = frozenset({"expect_column_to_exist"})
"""Rules that hold by construction here: a window's DataFrame has a column per declared field
(absent values are nulls, which the null rules count). They are not run: each costs GX a fixed
~10 ms per window and can never fail."""


def expectation_class_name(expectation_type: str) -> str:
    """``expect_column_values_to_be_between`` -> ``ExpectColumnValuesToBeBetween``."""
    return "".join(part[:1].upper() + part[1:] for part in expectation_type.split("_"))


@dataclass(frozen=True)
class Rule:
    """One expectation of the suite as quality scores it."""

    index: int
    type: str
    kwargs: dict[str, Any]
    name: str
    dimension: str
    source: str
    column: str | None
    max_unexpected_count: int | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the rule reads: ``column``, ``column_A``/``column_B`` or ``column_list``."""
        names: list[str] = []
        for name in ("column", "column_A", "column_B", "column_list"):
            value = self.kwargs.get(name)
            values = value if isinstance(value, list) else [value]
            names.extend(item for item in values if isinstance(item, str) and item not in names)
        return tuple(names)

    @property
    def mostly(self) -> float:
        value = self.kwargs.get("mostly")
        return float(value) if isinstance(value, (int, float)) else 1.0

    @property
    def scored_as(self) -> str:
        """The quality dimension whose score the rule feeds."""
        if self.dimension in ("completeness", "uniqueness"):
            return self.dimension
        return "conformity"


@dataclass
class RuleResult:
    rule: Rule
    success: bool | None
    element_count: int | None = None
    unexpected_count: int | None = None
    missing_count: int | None = None
    observed_value: Any = None
    examples: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def aggregate(self) -> bool:
        return self.unexpected_count is None


@dataclass
class CompiledSuite:
    dataset_id: str
    version: str
    rules: list[Rule]
    suite: Any
    problems: list[str]


class GreatExpectations:
    """One ephemeral GX context per process; validations are serialised (GX is not thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gx: Any = None
        self._batch_definition: Any = None
        self._validator: Any = None

    def _module(self) -> Any:
        if self._gx is None:
            with warnings.catch_warnings():
                # GX imports deprecated stdlib modules; that is its business, not a citybase error.
                warnings.simplefilter("ignore")
                import great_expectations as gx
                from great_expectations.data_context.types.base import ProgressBarsConfig
                from great_expectations.execution_engine import pandas_execution_engine
                from great_expectations.validator.v1_validator import Validator

                # GX fingerprints every in-memory DataFrame (a hash of all its values) to name the
                # batch; quality validates each window once and never looks a batch up again, and
                # on a 100,000-row window the hash costs more than the checks. Off for this process.
                pandas_execution_engine.HASH_THRESHOLD = 0
                self._validator = Validator

                context = gx.get_context(mode="ephemeral")
                context.variables.progress_bars = ProgressBarsConfig(
                    globally=False, metric_calculations=False
                )
                source = context.data_sources.add_pandas("citybase-quality")
                asset = source.add_dataframe_asset("window")
                self._batch_definition = asset.add_batch_definition_whole_dataframe("window")
                self._gx = gx
        return self._gx

    def compile(self, dataset_id: str, version: str, items: Any) -> CompiledSuite:
        """The GX suite of one contract version; rules GX cannot build are left out, with a problem."""
        with self._lock:
            gx = self._module()
            problems: list[str] = []
            rules: list[Rule] = []
            suite = gx.ExpectationSuite(name=f"{dataset_id}@{version}")
            if not isinstance(items, list):
                problems.append("the contract version carries no expectation suite (not a list)")
                items = []
            for index, item in enumerate(items):
                try:
                    rule = _rule(index, item)
                    if rule.type in TABLE_LEVEL:
                        continue
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        expectation_class = getattr(gx.expectations, expectation_class_name(rule.type))
                        expectation = expectation_class(
                            **rule.kwargs, meta={"rule": rule.name, "index": index}
                        )
                    suite.add_expectation(expectation)
                    rules.append(rule)
                except Exception as error:
                    described = item.get("type") if isinstance(item, dict) else repr(item)[:80]
                    problems.append(
                        f"expectation {index} ({described}) cannot be built: {_first_line(error)}"
                    )
            return CompiledSuite(dataset_id, version, rules, suite, problems)

    def validate(self, compiled: CompiledSuite, frame: pd.DataFrame, examples: int) -> list[RuleResult]:
        """Run the suite on one window; raises only if GX as a whole fails."""
        if not compiled.rules:
            return []
        with self._lock:
            self._module()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # One validator per window: the batch is built once (Batch.validate builds it again).
                validator = self._validator(
                    self._batch_definition,
                    result_format={"result_format": "BASIC", "partial_unexpected_count": max(examples, 1)},
                    batch_parameters={"dataframe": frame},
                )
                outcome = validator.validate_expectation_suite(compiled.suite)
        by_index = {rule.index: rule for rule in compiled.rules}
        results: list[RuleResult] = []
        for position, result in enumerate(outcome.results):
            meta = result.expectation_config.meta or {}
            rule = by_index.get(meta.get("index", -1)) or compiled.rules[position]
            results.append(_result(rule, result, examples))
        return results


def _rule(index: int, item: Any) -> Rule:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise ValueError("an expectation is an object with a type")
    kwargs = item.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError("kwargs must be an object")
    meta: dict[str, Any] = item["meta"] if isinstance(item.get("meta"), dict) else {}
    limit = meta.get("max_unexpected_count")
    return Rule(
        index=index,
        type=item["type"],
        kwargs=dict(kwargs),
        name=str(meta.get("rule") or item["type"]),
        dimension=str(meta.get("dimension") or "conformity"),
        source=str(meta.get("source") or "schema"),
        column=kwargs.get("column") if isinstance(kwargs.get("column"), str) else None,
        max_unexpected_count=int(limit) if isinstance(limit, int) else None,
    )


def _result(rule: Rule, result: Any, examples: int) -> RuleResult:
    info = result.exception_info or {}
    errors = [info] if "raised_exception" in info else list(info.values())
    failed = [entry for entry in errors if isinstance(entry, dict) and entry.get("raised_exception")]
    if failed:
        return RuleResult(rule, None, error=_first_line(failed[0].get("exception_message") or "GX failed"))
    body = result.result or {}
    unexpected = body.get("unexpected_count")
    success = bool(result.success)
    if unexpected is not None and rule.max_unexpected_count is not None:
        # GX has no count threshold: the catalog leaves it to quality (meta.max_unexpected_count).
        success = int(unexpected) <= rule.max_unexpected_count
    return RuleResult(
        rule,
        success,
        element_count=_int(body.get("element_count")),
        unexpected_count=_int(unexpected),
        missing_count=_int(body.get("missing_count")),
        observed_value=_plain(body.get("observed_value")),
        examples=[_plain(value) for value in (body.get("partial_unexpected_list") or [])[:examples]],
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _plain(value: Any) -> Any:
    """A JSON-ready value (numpy scalars, NaN) for evidence."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if hasattr(value, "item"):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (int, dict, list)):
        return value
    return str(value)


def _first_line(error: object) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]
