"""``citybase contracts``: lint, diff and register ODCS data contracts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from services.catalog.contracts import compatibility, derive
from services.catalog.contracts.odcs import ContractInvalid, ContractTooLarge, ParsedContract, parse_contract

app = typer.Typer(help="Lint, compare and register ODCS v3 data contracts.", no_args_is_help=True)
console = Console(soft_wrap=True)

FileArgument = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


def _parse(path: Path) -> ParsedContract:
    try:
        return parse_contract(path.read_bytes())
    except (ContractInvalid, ContractTooLarge) as problem:
        console.print(f"[red]{path}: {problem.detail or problem.title}[/red]")
        for error in problem.errors or []:
            console.print(f"  {error.path or '/'}  [bold]{error.rule}[/bold]  {error.message}")
        raise typer.Exit(1) from problem


@app.command()
def lint(files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Check that each file is a valid ODCS v3 contract and that citybase can derive from it."""
    for path in files:
        contract = _parse(path)
        schema = derive.record_schema(contract)
        sensitive = derive.sensitive_fields(contract)
        console.print(
            f"[green]ok[/green] {path}: {contract.id} {contract.version} "
            f"({len(schema['properties'])} fields, key {derive.primary_key(contract) or '-'}, "
            f"{len(sensitive)} sensitive, {len(derive.expectation_suite(contract))} expectations)"
        )


@app.command()
def diff(
    old: FileArgument,
    new: FileArgument,
    mode: Annotated[compatibility.CompatibilityMode, typer.Option(help="Compatibility mode to check.")] = (
        compatibility.CompatibilityMode.BACKWARD
    ),
) -> None:
    """Show what changed between two versions and whether NEW keeps the compatibility MODE."""
    before, after = _parse(old), _parse(new)
    old_schema, new_schema = derive.record_schema(before), derive.record_schema(after)
    console.print(compatibility.render(compatibility.diff(old_schema, new_schema)))
    breaking = compatibility.check(new_schema, [(before.version, old_schema)], mode)
    if breaking:
        console.print(f"\n[red]{len(breaking)} breaking change(s) under {mode}:[/red]")
        console.print(compatibility.render(breaking))
        raise typer.Exit(1)
    console.print(f"\n[green]compatible under {mode}[/green]")


@app.command()
def register(
    file: FileArgument,
    url: Annotated[str, typer.Option(envvar="CITYBASE_URL", help="The catalog's base URL.")] = (
        "http://127.0.0.1:8000/catalog"
    ),
    key: Annotated[
        str | None, typer.Option(envvar="CITYBASE_API_KEY", help="API key of a department or admin.")
    ] = None,
) -> None:
    """Register FILE with a running catalog: a new dataset, or its next version."""
    if not key:
        console.print("[red]an API key is needed: --key or CITYBASE_API_KEY[/red]")
        raise typer.Exit(2)
    response = httpx.post(
        f"{url.rstrip('/')}/v1/contracts",
        content=file.read_bytes(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/yaml"},
        timeout=float(os.environ.get("CITYBASE_TIMEOUT", "30")),
    )
    if response.status_code == 201:
        body = response.json()
        console.print(f"[green]registered[/green] {body['dataset_id']} {body['version']}")
        return
    problem = response.json() if "json" in response.headers.get("content-type", "") else {}
    console.print(
        f"[red]{response.status_code} {problem.get('title', response.reason_phrase)}[/red]: {problem.get('detail', '')}"
    )
    for error in problem.get("errors") or []:
        console.print(f"  {error['path'] or '/'}  {error['rule']}  {error['message']}")
    for change in problem.get("breaking_changes") or []:
        console.print(f"  {change['path']}  {change['rule']}  {change['message']}")
    raise typer.Exit(1)
