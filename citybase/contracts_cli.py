"""``citybase contracts``: lint, diff and register ODCS data contracts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from citybase import connection
from citybase.connection import Refused
from citybase.verbs import (
    EXIT_CODES,
    REFUSED,
    KeyOption,
    LangOption,
    TranslatedCommand,
    TranslatedGroup,
    UrlOption,
    print_refusal,
    reaching,
)
from services.catalog.contracts import compatibility, derive
from services.catalog.contracts.odcs import ContractInvalid, ContractTooLarge, ParsedContract, parse_contract
from services.common import i18n
from services.common.i18n import N_, _

app = typer.Typer(
    help=N_("Lint, compare and register ODCS v3 data contracts."), cls=TranslatedGroup, no_args_is_help=True
)
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


@app.command(
    help=N_("Check that each file is a valid ODCS v3 contract and that citybase can derive from it."),
    cls=TranslatedCommand,
)
def lint(files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)]) -> None:
    for path in files:
        contract = _parse(path)
        schema = derive.record_schema(contract)
        sensitive = derive.sensitive_fields(contract)
        console.print(
            _(
                "[green]ok[/green] %(path)s: %(dataset)s %(version)s (%(fields)s fields, key %(key)s, "
                "%(sensitive)s sensitive, %(expectations)s expectations)"
            )
            % {
                "path": path,
                "dataset": contract.id,
                "version": contract.version,
                "fields": len(schema["properties"]),
                "key": derive.primary_key(contract) or "-",
                "sensitive": len(sensitive),
                "expectations": len(derive.expectation_suite(contract)),
            }
        )


@app.command(
    help=N_("Show what changed between two versions and whether NEW keeps the compatibility MODE."),
    cls=TranslatedCommand,
)
def diff(
    old: FileArgument,
    new: FileArgument,
    mode: Annotated[
        compatibility.CompatibilityMode, typer.Option(help=N_("Compatibility mode to check."))
    ] = (compatibility.CompatibilityMode.BACKWARD),
) -> None:
    before, after = _parse(old), _parse(new)
    old_schema, new_schema = derive.record_schema(before), derive.record_schema(after)
    console.print(compatibility.render(compatibility.diff(old_schema, new_schema)))
    breaking = compatibility.check(new_schema, [(before.version, old_schema)], mode)
    if breaking:
        console.print(
            "\n"
            + _("[red]%(count)s breaking change(s) under %(mode)s:[/red]")
            % {"count": len(breaking), "mode": mode}
        )
        console.print(compatibility.render(breaking))
        raise typer.Exit(1)
    console.print("\n" + _("[green]compatible under %(mode)s[/green]") % {"mode": mode})


@app.command(
    help=N_("Register FILE with a running catalog: a new dataset, or its next version."),
    epilog=EXIT_CODES,
    cls=TranslatedCommand,
)
def register(
    file: FileArgument, url: UrlOption = None, key: KeyOption = None, lang: LangOption = None
) -> None:
    i18n.activate(connection.language(lang))
    with reaching(url, key, timeout=float(os.environ.get("CITYBASE_TIMEOUT", "30"))) as api:
        try:
            body = api.call(
                "POST",
                "/catalog/v1/contracts",
                content=file.read_bytes(),
                headers={"Content-Type": "application/yaml"},
            )
        except Refused as refusal:
            print_refusal(refusal)
            for change in refusal.problem.get("breaking_changes") or []:
                console.print(f"  {change['path']}  {change['rule']}  {change['message']}")
            if refusal.slug == "domain-not-found":
                _domain_hint(file, refusal.problem)
            raise typer.Exit(REFUSED) from None
    console.print(
        _("[green]registered[/green] %(dataset)s %(version)s")
        % {"dataset": body["dataset_id"], "version": body["version"]}
    )


def _domain_hint(file: Path, problem: dict[str, Any]) -> None:
    """Which domain is missing, and the command an admin creates it with. The catalog names the
    dataset and its domain (a contract's id need not be the dataset id); an older catalog does not,
    and then the contract's id is."""
    dataset_id = problem.get("dataset_id")
    if not isinstance(dataset_id, str):
        try:
            dataset_id = parse_contract(file.read_bytes()).id
        except (ContractInvalid, ContractTooLarge):
            return
    domain = (
        problem.get("domain_id")
        if isinstance(problem.get("domain_id"), str)
        else dataset_id.partition(".")[0]
    )
    console.print(
        _(
            "The domain %(domain)s of %(dataset)s does not exist. An admin creates it, owned by your "
            "department, with:\n  citybase domains create %(domain)s --name NAME --owner DEPARTMENT"
        )
        % {"domain": domain, "dataset": dataset_id}
    )
