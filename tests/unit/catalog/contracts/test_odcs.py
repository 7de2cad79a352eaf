"""parse_contract: what enters the catalog, and how precisely a refusal says why."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from open_data_contract_standard.model import OpenDataContractStandard

from services.catalog.contracts.odcs import (
    MAX_REPORTED_ERRORS,
    ContractInvalid,
    ContractTooLarge,
    SemanticVersion,
    compare_versions,
    parse_contract,
)
from tests.support.contracts import (
    as_json,
    as_yaml,
    contract_document,
    contract_property,
    with_rule,
)


def refusal(document: str | bytes, **kwargs: object) -> ContractInvalid:
    with pytest.raises(ContractInvalid) as caught:
        parse_contract(document, **kwargs)  # type: ignore[arg-type]
    assert caught.value.errors, "a refusal always says where"
    return caught.value


def paths(problem: ContractInvalid) -> list[str]:
    return [error.path for error in problem.errors or ()]


def rules(problem: ContractInvalid) -> set[str]:
    return {error.rule for error in problem.errors or ()}


# --- accepted --------------------------------------------------------------------------------


def test_a_yaml_contract_parses_into_its_identity_and_model() -> None:
    contract = parse_contract(as_yaml(contract_document(version="1.2.0")))

    assert (contract.id, contract.version, contract.api_version) == ("test.records", "1.2.0", "v3.1.0")
    assert contract.semantic_version == SemanticVersion(1, 2, 0)
    assert isinstance(contract.model, OpenDataContractStandard)
    assert contract.model.schema_ is not None
    assert contract.model.schema_[0].name == "records"
    assert len(contract.fingerprint) == 64


def test_yaml_and_json_of_the_same_contract_have_the_same_fingerprint() -> None:
    document = contract_document()

    from_yaml, from_json = parse_contract(as_yaml(document)), parse_contract(as_json(document))

    assert from_yaml.raw == from_json.raw == document
    assert from_yaml.fingerprint == from_json.fingerprint
    assert from_yaml == from_json
    assert hash(from_yaml) == hash(from_json)


def test_any_change_changes_the_fingerprint() -> None:
    first = parse_contract(as_yaml(contract_document()))
    second = parse_contract(as_yaml(contract_document(name="Test records, renamed")))

    assert first.fingerprint != second.fingerprint


def test_bytes_with_a_byte_order_mark_are_accepted() -> None:
    contract = parse_contract(b"\xef\xbb\xbf" + as_yaml(contract_document()).encode())

    assert contract.id == "test.records"


def test_parts_citybase_does_not_use_are_kept_as_submitted() -> None:
    unused = {
        "servers": [{"server": "kafka-prod", "type": "kafka", "host": "kafka:9092", "format": "json"}],
        "roles": [{"role": "analyst", "access": "read"}],
        "price": {"priceAmount": 0, "priceCurrency": "CNY", "priceUnit": "record"},
        "support": [{"channel": "hotline", "url": "tel:12345"}],
        "team": {"name": "Data office", "members": [{"username": "steward@example.gov.cn", "role": "owner"}]},
        "authoritativeDefinitions": [{"url": "https://example.gov.cn/law", "type": "businessDefinition"}],
        "contractCreatedTs": "2026-11-24T08:00:00Z",
    }
    document = contract_document(**unused)

    contract = parse_contract(as_yaml(document))

    assert contract.raw == document
    assert contract.model.price is not None


def test_the_parsed_contract_is_frozen() -> None:
    contract = parse_contract(as_yaml(contract_document()))

    with pytest.raises(dataclasses.FrozenInstanceError):
        contract.version = "9.9.9"  # type: ignore[misc]


def test_plain_yaml_scalars_follow_the_yaml_1_2_core_schema() -> None:
    # YAML 1.1 would read a timestamp, two booleans and a sexagesimal number (90) here.
    prop = with_rule(
        contract_property("answer"),
        metric="invalidValues",
        arguments={"validValues": ["yes", "no"]},
        mustBe=0,
    )
    text = as_yaml(contract_document(prop)).replace("- 'yes'", "- yes").replace("- 'no'", "- no")
    text += "contractCreatedTs: 2026-11-24T08:00:00Z\ntags: ['1:30', 1:30]\n"

    contract = parse_contract(text)

    assert contract.raw["contractCreatedTs"] == "2026-11-24T08:00:00Z"
    assert contract.raw["schema"][0]["properties"][0]["quality"][0]["arguments"]["validValues"] == [
        "yes",
        "no",
    ]
    assert contract.raw["tags"] == ["1:30", "1:30"]


def test_core_schema_integers_and_floats() -> None:
    text = (
        as_yaml(contract_document())
        + "customProperties:\n  - {property: n, value: [010, 0o10, 0x1F, -7, 1e3, .5]}\n"
    )

    contract = parse_contract(text)

    assert contract.raw["customProperties"][0]["value"] == [10, 8, 31, -7, 1000.0, 0.5]


# --- syntax ----------------------------------------------------------------------------------


def test_malformed_yaml_names_line_and_column() -> None:
    problem = refusal("apiVersion: v3.1.0\nkind: DataContract\nid: [unclosed\nversion: 1.0.0\n")

    assert problem.status == 422
    assert problem.type.endswith("/contract-invalid")
    [error] = problem.errors or []
    assert (error.path, error.rule) == ("", "yaml-syntax")
    assert "line 4, column" in error.message


def test_malformed_json_names_line_and_column() -> None:
    problem = refusal('{\n  "apiVersion": "v3.1.0",\n  "kind": "DataContract",\n}')

    [error] = problem.errors or []
    assert (error.path, error.rule) == ("", "json-syntax")
    assert error.message.startswith("line 4, column 1:")


def test_text_that_is_not_utf8_is_refused() -> None:
    problem = refusal(as_yaml(contract_document()).encode("utf-16"))

    assert rules(problem) == {"encoding"}


@pytest.mark.parametrize(
    ("document", "what"),
    [
        ("- a\n- b\n", "list"),
        ("just a string\n", "str"),
        ("42", "int"),
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("[1, 2]", "list"),
    ],
)
def test_a_document_that_is_not_a_mapping_is_refused(document: str, what: str) -> None:
    problem = refusal(document)

    [error] = problem.errors or []
    assert (error.path, error.rule) == ("", "type")
    assert what in error.message


def test_two_yaml_documents_in_one_stream_are_refused() -> None:
    text = as_yaml(contract_document())

    problem = refusal(text + "---\n" + text)

    assert rules(problem) == {"yaml-syntax"}


def test_duplicate_yaml_keys_are_refused_with_their_path_and_line() -> None:
    text = (
        "apiVersion: v3.1.0\nkind: DataContract\nid: a\nversion: 1.0.0\nschema:\n  - name: x\n    name: y\n"
    )

    problem = refusal(text)

    [error] = problem.errors or []
    assert (error.path, error.rule) == ("/schema/0/name", "duplicate-key")
    assert error.message.startswith("line 7, column 5:")


def test_duplicate_json_keys_are_refused_with_their_path() -> None:
    text = '{"apiVersion": "v3.1.0", "kind": "DataContract", "id": "a", "version": "1.0.0",'
    text += ' "schema": [{"name": "x", "properties": [{"name": "a", "name": "b"}]}]}'

    problem = refusal(text)

    assert [(e.path, e.rule) for e in problem.errors or []] == [
        ("/schema/0/properties/0/name", "duplicate-key")
    ]


def test_yaml_aliases_are_refused_so_no_bomb_can_expand() -> None:
    bomb = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{previous},*{previous},*{previous},*{previous},*{previous}]\n"

    problem = refusal(bomb)

    [error] = problem.errors or []
    assert (error.path, error.rule) == ("/b/0", "yaml-alias")
    assert "YAML aliases are not accepted" in error.message


def test_a_merge_key_needs_an_alias_and_is_refused_too() -> None:
    problem = refusal("base: &base {kind: DataContract}\ncontract:\n  <<: *base\n")

    assert rules(problem) == {"yaml-alias"}


def test_a_document_over_the_size_cap_is_refused_before_parsing() -> None:
    text = as_yaml(contract_document())

    with pytest.raises(ContractTooLarge) as caught:
        parse_contract(text + "#" * 200, max_bytes=len(text) + 100)

    assert caught.value.status == 413
    assert caught.value.type.endswith("/contract-too-large")


def test_the_default_size_cap_is_one_mebibyte() -> None:
    with pytest.raises(ContractTooLarge):
        parse_contract(as_yaml(contract_document()) + "#" * (1024 * 1024))


def test_the_size_cap_counts_utf8_bytes_not_characters() -> None:
    text = as_yaml(contract_document(name="公交到站" * 10))

    with pytest.raises(ContractTooLarge):
        parse_contract(text, max_bytes=len(text))


@pytest.mark.parametrize("depth", [65, 5000])
def test_deep_yaml_nesting_is_refused(depth: int) -> None:
    problem = refusal("a: " + "[" * depth + "]" * depth + "\n")

    assert rules(problem) == {"depth"}


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deep_json_nesting_is_refused(depth: int) -> None:
    problem = refusal('{"a": ' + "[" * depth + "]" * depth + "}")

    assert rules(problem) == {"depth"}


def test_the_depth_cap_is_an_argument() -> None:
    text = as_yaml(contract_document())

    problem = refusal(text, max_depth=3)

    assert rules(problem) == {"depth"}


@pytest.mark.parametrize(
    ("tail", "rule", "path"),
    [
        (
            "customProperties: [{property: p, value: !!binary aGVsbG8=}]\n",
            "type",
            "/customProperties/0/value",
        ),
        ("customProperties: [{property: p, value: .nan}]\n", "number", "/customProperties/0/value"),
        (
            "customProperties: [{property: p, value: !!timestamp 2026-11-24}]\n",
            "type",
            "/customProperties/0/value",
        ),
        ("customProperties: [{property: p, value: {1: one}}]\n", "key-type", "/customProperties/0/value/1"),
    ],
)
def test_values_json_cannot_hold_are_refused(tail: str, rule: str, path: str) -> None:
    problem = refusal(as_yaml(contract_document()) + tail)

    assert [(e.path, e.rule) for e in problem.errors or []] == [(path, rule)]


def test_json_nan_is_refused() -> None:
    document = as_json(contract_document()).replace('"version": "1.0.0"', '"version": "1.0.0", "x": NaN')

    problem = refusal(document)

    assert rules(problem) == {"number"}


# --- ODCS v3 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["v2.2.2", "v4.0.0", "3.1.0", 3.1, None])
def test_only_odcs_v3_is_accepted(api_version: object) -> None:
    document = contract_document(apiVersion=api_version)

    problem = refusal(as_yaml(document))

    assert [(e.path, e.rule) for e in problem.errors or []] == [("/apiVersion", "api-version")]


def test_the_kind_must_be_data_contract() -> None:
    problem = refusal(as_yaml(contract_document(kind="DataProduct")))

    assert [(e.path, e.rule) for e in problem.errors or []] == [("/kind", "kind")]


@pytest.mark.parametrize("api_version", ["v3.0.0", "v3.0.2", "v3.1.0", "v3.2.0"])
def test_every_published_v3_revision_is_accepted(api_version: str) -> None:
    assert parse_contract(as_yaml(contract_document(apiVersion=api_version))).api_version == api_version


def test_a_missing_required_field_is_reported_at_the_root() -> None:
    document = contract_document()
    del document["id"]

    problem = refusal(as_yaml(document))

    assert [(e.path, e.rule) for e in problem.errors or []] == [("", "required")]
    assert "'id'" in (problem.errors or [])[0].message


def test_a_wrong_logical_type_is_reported_at_its_exact_place() -> None:
    properties = [contract_property(f"p{index}") for index in range(4)]
    properties[3]["logicalType"] = "text"

    problem = refusal(as_yaml(contract_document(*properties)))

    assert ("/schema/0/properties/3/logicalType", "enum") in [(e.path, e.rule) for e in problem.errors or []]


def test_unknown_fields_are_named_by_their_own_path() -> None:
    prop = contract_property("a", colour="blue")
    document = contract_document(prop, owner="someone")

    problem = refusal(as_yaml(document))

    assert paths(problem) == ["/owner", "/schema/0/properties/0/colour"]
    assert rules(problem) == {"unknown-field"}


def test_logical_type_options_that_do_not_fit_the_type_are_refused() -> None:
    prop = contract_property("count", "integer", logicalTypeOptions={"maxLength": 3})

    problem = refusal(as_yaml(contract_document(prop)))

    assert "/schema/0/properties/0/logicalTypeOptions/maxLength" in paths(problem)


def test_a_property_without_logical_type_is_told_so() -> None:
    # ODCS's schema tests "logicalType is map" with an if that also holds when it is absent.
    problem = refusal(as_yaml(contract_document(contract_property("a"), contract_property("b", None))))

    [error] = problem.errors or []
    assert (error.path, error.rule) == ("/schema/0/properties/1/logicalType", "required")


def test_every_schema_error_is_reported_sorted_by_path() -> None:
    document = contract_document(
        contract_property("a", "varchar"),
        contract_property("b", required="yes"),
        contract_property("c", "integer", logicalTypeOptions={"minimum": "zero"}),
    )
    document["status"] = 1

    problem = refusal(as_json(document))

    assert paths(problem) == sorted(paths(problem))
    assert {
        "/schema/0/properties/0/logicalType",
        "/schema/0/properties/1/required",
        "/schema/0/properties/2/logicalTypeOptions/minimum",
        "/status",
    } <= set(paths(problem))


def test_errors_are_capped() -> None:
    document = contract_document(*(contract_property(f"p{index}", "text") for index in range(80)))

    problem = refusal(as_yaml(document))

    assert len(problem.errors or []) == MAX_REPORTED_ERRORS
    assert f"the first {MAX_REPORTED_ERRORS} listed" in (problem.detail or "")


def test_a_quality_rule_with_two_operators_is_one_error() -> None:
    prop = with_rule(contract_property("a"), metric="nullValues", mustBe=0, mustBeLessThan=3)

    problem = refusal(as_yaml(contract_document(prop)))

    assert [(e.path, e.rule) for e in problem.errors or []] == [("/schema/0/properties/0/quality/0", "oneOf")]
    assert "matches several" in (problem.errors or [])[0].message


def test_a_quality_rule_without_an_operator_does_not_blame_its_other_fields() -> None:
    # The failing ODCS subschema leaves metric "unevaluated"; that echo is not reported.
    prop = with_rule(contract_property("a"), metric="nullValues", unit="rows")

    problem = refusal(as_yaml(contract_document(prop)))

    assert [(e.path, e.rule) for e in problem.errors or []] == [
        ("/schema/0/properties/0/quality/0", "required")
    ]


def test_an_unknown_metric_is_reported_once() -> None:
    prop = with_rule(contract_property("a"), metric="nulls", mustBe=0)

    problem = refusal(as_yaml(contract_document(prop)))

    assert [(e.path, e.rule) for e in problem.errors or []] == [
        ("/schema/0/properties/0/quality/0/metric", "enum")
    ]


def test_the_problem_body_lists_the_field_errors() -> None:
    problem = refusal(as_yaml(contract_document(kind="Nope")))

    body = problem.body()

    assert body["status"] == 422
    assert body["errors"] == [
        {"path": "/kind", "rule": "kind", "message": "kind must be 'DataContract', not 'Nope'"}
    ]


# --- beyond the JSON Schema --------------------------------------------------------------------


def test_duplicate_property_names_are_refused() -> None:
    document = contract_document(contract_property("a"), contract_property("b"), contract_property("a"))

    problem = refusal(as_yaml(document))

    [error] = problem.errors or []
    assert (error.path, error.rule) == ("/schema/0/properties/2/name", "duplicate-name")
    assert "/schema/0/properties/0" in error.message


def test_duplicate_nested_property_names_are_refused() -> None:
    address = contract_property(
        "address", "object", properties=[contract_property("street"), contract_property("street")]
    )
    contacts = contract_property(
        "contacts",
        "array",
        items=contract_property(None, "object", properties=[contract_property("p"), contract_property("p")]),
    )
    del contacts["items"]["name"]

    problem = refusal(as_yaml(contract_document(address, contacts)))

    assert paths(problem) == [
        "/schema/0/properties/0/properties/1/name",
        "/schema/0/properties/1/items/properties/1/name",
    ]


def test_the_same_name_in_different_objects_is_fine() -> None:
    address = contract_property("address", "object", properties=[contract_property("name")])

    contract = parse_contract(as_yaml(contract_document(contract_property("name"), address)))

    assert contract.id == "test.records"


def test_duplicate_schema_object_names_are_refused() -> None:
    document = contract_document()
    document["schema"].append(copy.deepcopy(document["schema"][0]))

    problem = refusal(as_yaml(document))

    assert [(e.path, e.rule) for e in problem.errors or []] == [("/schema/1/name", "duplicate-name")]


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "1.0.0.0", "01.0.0", "latest", "1.0.0-", ""])
def test_the_version_must_be_semantic(version: str) -> None:
    problem = refusal(as_yaml(contract_document(version=version)))

    assert [(e.path, e.rule) for e in problem.errors or []] == [("/version", "semver")]


def test_citybase_convention_errors_come_with_their_paths() -> None:
    phone = contract_property(
        "phone",
        classification="personal",
        customProperties=[{"property": "citybase.masking", "value": "blur"}],
    )
    document = contract_document(
        phone,
        slaProperties=[{"property": "latency", "value": 5}],
        customProperties=[{"property": "citybase.classification", "value": "secret"}],
    )

    problem = refusal(as_yaml(document))

    assert [(e.path, e.rule) for e in problem.errors or []] == [
        ("/customProperties/0/value", "citybase-policy"),
        ("/schema/0/properties/0/customProperties/0/value", "masking"),
        ("/slaProperties/0/value", "duration"),
    ]


def test_a_contract_without_a_schema_object_parses() -> None:
    """Roles, SLA or stakeholders only: a catalog entry whose stream stays closed (issue 18)."""
    document = contract_document()
    del document["schema"]

    contract = parse_contract(as_yaml(document))

    assert contract.model.schema_ is None


# --- semantic versions -------------------------------------------------------------------------


def test_semantic_versions_order_by_semver_precedence() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.2.0",
        "1.10.0",
        "2.0.0",
    ]

    assert sorted((SemanticVersion.parse(v) for v in reversed(ordered)), key=lambda v: v) == [
        SemanticVersion.parse(v) for v in ordered
    ]
    for lower, higher in itertools.pairwise(ordered):
        assert compare_versions(lower, higher) == -1
        assert compare_versions(higher, lower) == 1


def test_build_metadata_does_not_change_precedence() -> None:
    assert compare_versions("1.0.0+build.7", "1.0.0") == 0
    assert str(SemanticVersion.parse("1.0.0-rc.1+build.7")) == "1.0.0-rc.1+build.7"


def test_parse_rejects_what_is_not_semver() -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        SemanticVersion.parse("1.0")


# --- never anything but a problem ------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_arbitrary_input_yields_a_contract_or_a_problem(document: str | bytes) -> None:
    # Hypothesis fails the test on any other exception: no input may crash the parser.
    with contextlib.suppress(ContractInvalid, ContractTooLarge):
        parse_contract(document, max_bytes=250)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_values_in_the_contract_yield_a_contract_or_a_problem(value: object) -> None:
    document = contract_document(customProperties=[{"property": "anything", "value": value}], schema=value)

    try:
        contract = parse_contract(json.dumps(document))
    except ContractInvalid:
        return
    assert contract.raw == document
