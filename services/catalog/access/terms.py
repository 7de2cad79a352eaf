"""The terms a request or a grant may have, checked against the dataset's current contract.

A grant's fields, masks and row filter only ever narrow what was asked and what the current
contract has. Sensitive fields of the contract are masked in every grant by their contract rule;
an approver may deliver one in clear on a non-restricted dataset only, with a reason, on record.
Pure checks on a :class:`ContractScope`, read in the caller's session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.catalog.access import exceptions
from services.catalog.access.schemas import (
    GrantTerms,
    MaskValue,
)
from services.catalog.datasets.service import current_version
from services.catalog.models import Dataset
from services.catalog.schemas import Classification
from services.common.auth import Principal
from services.common.i18n import N_, Sentence, reason_of
from services.common.policy import FieldMask, RowFilterError, parse_row_filter
from services.common.problems import FieldError

STRONG_MASKS = frozenset({"hash", "redact"})
"""Masks that reveal nothing of a value, whatever their options: any restricted field may take them."""


@dataclass(frozen=True)
class ContractScope:
    """The fields of a dataset's current contract and the default mask of each sensitive one.

    A grant lists top-level ``fields`` (what feeds keep of a record); masks and row filters may
    reach into them by ``paths`` (``a.b``, ``a[].b``).
    """

    dataset: Dataset
    version: str
    fields: frozenset[str]
    paths: frozenset[str]
    sensitive: Mapping[str, dict[str, Any]]

    @property
    def classification(self) -> Classification:
        return Classification(self.dataset.classification)


def contract_scope(session: Session, dataset: Dataset) -> ContractScope:
    version = current_version(session, dataset)
    if version is None:
        raise exceptions.DatasetNotAvailable(
            Sentence(N_("dataset %(id)r has no contract yet"), id=dataset.id)
        )
    return ContractScope(
        dataset=dataset,
        version=version.version,
        fields=frozenset((version.record_schema.get("properties") or {}).keys()),
        paths=frozenset(field_paths(version.record_schema)),
        sensitive={path: contract_mask(rule) for path, rule in version.sensitive_fields.items()},
    )


def field_paths(schema: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    """Every field path of a record schema: ``a``, ``a.b`` inside objects, ``a[].b`` inside arrays."""
    for name, prop in (schema.get("properties") or {}).items():
        path = prefix + name
        yield path
        if not isinstance(prop, dict):
            continue
        if prop.get("properties"):
            yield from field_paths(prop, path + ".")
        items = prop.get("items")
        if isinstance(items, dict) and items.get("properties"):
            yield from field_paths(items, path + "[].")


def contract_mask(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A contract's stored masking rule (``keep_prefix``...) as the policy module's mask value."""
    names = {"keep_prefix": "keepPrefix", "keep_suffix": "keepSuffix", "precision": "precision"}
    value: dict[str, Any] = {"kind": rule["kind"]}
    value.update({names[key]: item for key, item in rule.items() if key in names and item is not None})
    return mask_json(_parse_mask(value, "/sensitive_fields"))


def mask_json(mask: FieldMask) -> dict[str, Any]:
    """A mask as grants store and publish it: always an object with ``kind``."""
    value = mask.to_value()
    return {"kind": value} if isinstance(value, str) else dict(value)


def _parse_mask(value: MaskValue, pointer: str) -> FieldMask:
    try:
        return FieldMask.from_value(value)
    except ValueError as error:
        reason = reason_of(error)
        raise exceptions.InvalidMask(
            reason, errors=[FieldError(path=pointer, rule="mask", message=reason)]
        ) from error


def field_pointer(*parts: str | int) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def check_known(scope: ContractScope, fields: Sequence[str], where: str) -> None:
    unknown = [(index, name) for index, name in enumerate(fields) if name not in scope.fields]
    if unknown:
        raise exceptions.UnknownFields(
            Sentence(
                N_("%(names)s not in %(id)s %(version)s"),
                names=", ".join(repr(name) for _, name in unknown),
                id=scope.dataset.id,
                version=scope.version,
            ),
            errors=[
                FieldError(
                    path=field_pointer("body", where, index),
                    rule="unknown-field",
                    message=Sentence(
                        N_("%(name)r is not a top-level field of the current contract (%(version)s)"),
                        name=name,
                        version=scope.version,
                    ),
                )
                for index, name in unknown
            ],
        )


def check_row_filter(scope: ContractScope, text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    try:
        parse_row_filter(text, sorted(path for path in scope.paths if "[]" not in path))
    except RowFilterError as error:
        reason = Sentence(
            N_("%(message)s (at character %(position)s)"), message=error.sentence, position=error.position
        )
        raise exceptions.InvalidRowFilter(
            reason,
            errors=[FieldError(path="/body/row_filter", rule="row-filter", message=reason)],
            position=error.position,
        ) from error
    return text


def _covered(path: str, fields: Iterable[str]) -> bool:
    """Whether ``path`` is a granted field or inside one (``a.b`` is inside ``a``)."""
    return any(path == field or path.startswith((field + ".", field + "[].")) for field in fields)


@dataclass(frozen=True)
class Terms:
    fields: list[str]
    masking: dict[str, dict[str, Any]]
    unmasked: dict[str, dict[str, Any]]


def resolve_masking(
    scope: ContractScope,
    fields: Sequence[str],
    *,
    base_masking: Mapping[str, dict[str, Any]],
    base_unmasked: Mapping[str, dict[str, Any]],
    masking: Mapping[str, MaskValue] | None,
    unmask: Mapping[str, str] | None,
    actor: Principal,
    now: datetime,
) -> Terms:
    """The masks of a grant of ``fields``: kept from before, the contract's default on every
    sensitive field, then the approver's added or changed masks, then its un-maskings.

    An un-masked sensitive field stays in clear until a mask is set on it again. A restricted
    dataset never delivers a sensitive field in clear.
    """
    result = {path: mask for path, mask in base_masking.items() if _covered(path, fields)}
    unmasked = {path: entry for path, entry in base_unmasked.items() if _covered(path, fields)}
    for path, mask in scope.sensitive.items():
        if _covered(path, fields) and path not in result and path not in unmasked:
            result[path] = mask
    for path, value in (masking or {}).items():
        pointer = field_pointer("body", "masking", path)
        if path not in scope.paths or not _covered(path, fields):
            raise exceptions.InvalidMask(
                Sentence(N_("%(path)r is not a granted field"), path=path),
                errors=[
                    FieldError(
                        path=pointer,
                        rule="granted-field",
                        message=Sentence(N_("%(path)r is not granted"), path=path),
                    )
                ],
            )
        if unmask and path in unmask:
            raise exceptions.InvalidTerms(
                Sentence(N_("%(path)r cannot be both masked and un-masked"), path=path),
                errors=[FieldError(path=pointer, rule="mask-or-unmask", message=Sentence(N_("choose one")))],
            )
        mask = mask_json(_parse_mask(value, pointer))
        if (
            scope.classification is Classification.restricted
            and path in scope.sensitive
            and mask["kind"] not in STRONG_MASKS
            and mask != scope.sensitive[path]
        ):
            raise exceptions.UnmaskingNotAllowed(
                Sentence(
                    N_("%(id)s is restricted: %(path)r takes hash, redact or its contract rule"),
                    id=scope.dataset.id,
                    path=path,
                ),
                errors=[
                    FieldError(
                        path=pointer,
                        rule="restricted",
                        message=Sentence(N_("a weaker mask than the contract's could reveal the value")),
                    )
                ],
            )
        result[path] = mask
        unmasked.pop(path, None)
    for path, reason in (unmask or {}).items():
        pointer = field_pointer("body", "unmask", path)
        if path not in scope.sensitive or not _covered(path, fields):
            raise exceptions.UnmaskingNotAllowed(
                Sentence(N_("%(path)r is not a granted sensitive field"), path=path),
                errors=[
                    FieldError(
                        path=pointer, rule="sensitive-field", message=Sentence(N_("nothing to un-mask"))
                    )
                ],
            )
        if scope.classification is Classification.restricted:
            raise exceptions.UnmaskingNotAllowed(
                Sentence(
                    N_("%(id)s is restricted: %(path)r is always masked"), id=scope.dataset.id, path=path
                ),
                errors=[
                    FieldError(
                        path=pointer,
                        rule="restricted",
                        message=Sentence(N_("a restricted dataset never leaves the platform unmasked")),
                    )
                ],
            )
        result.pop(path, None)
        unmasked[path] = {"reason": reason, "by": actor.id, "at": now.isoformat()}
    if scope.classification is Classification.restricted:
        # A restricted dataset may have been conditional when an earlier un-masking was granted.
        for path in [path for path in unmasked if path in scope.sensitive]:
            result[path] = scope.sensitive[path]
            del unmasked[path]
    return Terms(fields=list(fields), masking=result, unmasked=unmasked)


def narrowed_fields(
    scope: ContractScope, requested: Sequence[str], chosen: Sequence[str] | None
) -> list[str]:
    if chosen is None:
        fields = [name for name in requested if name in scope.fields]
    else:
        fields = list(dict.fromkeys(chosen))
        beyond = [(index, name) for index, name in enumerate(fields) if name not in requested]
        if beyond:
            raise exceptions.FieldsNotRequested(
                Sentence(
                    N_("%(names)s were not requested"), names=", ".join(repr(name) for _, name in beyond)
                ),
                errors=[
                    FieldError(
                        path=field_pointer("body", "fields", index),
                        rule="requested",
                        message=Sentence(N_("%(name)r was not requested"), name=name),
                    )
                    for index, name in beyond
                ],
            )
        check_known(scope, fields, "fields")
    if not fields:
        raise exceptions.InvalidTerms(
            Sentence(N_("a grant needs at least one field of the current contract")),
            errors=[
                FieldError(path="/body/fields", rule="minItems", message=Sentence(N_("at least one field")))
            ],
        )
    return fields


def narrowed_quota(requested: int | None, terms: GrantTerms, where: str) -> int | None:
    quota = terms.quota_records_per_day if "quota_records_per_day" in terms.model_fields_set else requested
    if requested is not None and (quota is None or quota > requested):
        raise exceptions.InvalidTerms(
            Sentence(
                N_("the quota may not exceed the %(requested)s records/day requested"), requested=requested
            ),
            errors=[
                FieldError(
                    path=field_pointer("body", where),
                    rule="maximum",
                    message=Sentence(N_("at most %(requested)s"), requested=requested),
                )
            ],
        )
    return quota
