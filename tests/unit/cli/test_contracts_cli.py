"""``citybase contracts lint | diff``: the same parser and compatibility engine as the catalog."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from citybase.cli import app
from tests.factories import EXAMPLES, contract_property, evolve_contract, example_contract

BUS = "transport.bus-arrivals"
runner = CliRunner()


def test_lint_accepts_every_example_contract() -> None:
    files = sorted(str(path) for path in (EXAMPLES / "datasets").glob("*/*.yaml"))
    result = runner.invoke(app, ["contracts", "lint", *files])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == len(files) == 10


def test_lint_names_the_place_of_an_error(tmp_path: Path) -> None:
    def wrong_type(document: dict) -> None:
        contract_property(document, "delay_s")["logicalType"] = "decimal-ish"

    broken = tmp_path / "broken.yaml"
    broken.write_text(evolve_contract(example_contract(BUS), "1.0.0", wrong_type))
    result = runner.invoke(app, ["contracts", "lint", str(broken)])
    assert result.exit_code == 1
    assert "/schema/0/properties/" in result.output


def test_diff_says_compatible_or_lists_breaking_changes() -> None:
    old = str(EXAMPLES / "datasets" / BUS / "1.0.0.yaml")
    new = str(EXAMPLES / "datasets" / BUS / "1.1.0.yaml")
    backward = runner.invoke(app, ["contracts", "diff", old, new, "--mode", "BACKWARD"])
    assert backward.exit_code == 0, backward.output
    assert "compatible under BACKWARD" in backward.output
    assert "+ /direction" in backward.output
    forward = runner.invoke(app, ["contracts", "diff", old, new, "--mode", "FORWARD"])
    assert forward.exit_code == 1
    assert "enum-value-added" in forward.output


def test_register_needs_a_key() -> None:
    result = runner.invoke(
        app, ["contracts", "register", str(EXAMPLES / "datasets" / BUS / "1.0.0.yaml")], env={}
    )
    assert result.exit_code == 2
