"""The admin's nouns: ``citybase domains``, ``departments``, ``principals`` and ``keys``, over the
catalog's HTTP API; ``citybase login`` (where the verbs call, with which key) and ``citybase admin
reset-key`` (a lost admin key, through the data directory, on the machine that holds it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from citybase import connection
from citybase.connection import segment
from citybase.verbs import (
    EXIT_CODES,
    Call,
    LangOption,
    TranslatedCommand,
    TranslatedGroup,
    fail,
    noun,
    reaching,
    verb,
)
from services.common import i18n
from services.common.auth import PrincipalKind
from services.common.i18n import N_, _
from services.common.vocabulary import DepartmentKind

domains = noun(N_("Domains: the part of a dataset id before the dot, each owned by a department."))
departments = noun(N_("Departments: the publishers that own domains and datasets."))
principals = noun(
    N_(
        "Principals: who calls the platform (department, scenario, approver, operator, admin, organisation, evaluator)."
    )
)
keys = noun(N_("API keys of a principal: issue (shown once), list, revoke."))
admin = typer.Typer(
    help=N_("Work on this machine's platform itself (needs its data directory)."),
    epilog=EXIT_CODES,
    cls=TranslatedGroup,
    no_args_is_help=True,
)


Name = Annotated[str, typer.Option(help=N_("The name people read."))]


# --- domains ------------------------------------------------------------------------------------


def _domain_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("name", _("Name")),
        ("owner_department_id", _("Owner")),
        ("description", _("Description")),
    ]


@verb(domains, "list", N_("List the domains and the department that owns each."))
def list_domains(call: Call) -> None:
    call.show(call.api.get("/catalog/v1/domains"), _domain_columns())


@verb(domains, "create", N_("Create a domain (admin); name the department that will own it."))
def create_domain(
    call: Call,
    domain_id: Annotated[str, typer.Argument(metavar="ID", help=N_("e.g. water"))],
    name: Name,
    owner: Annotated[
        str | None,
        typer.Option(help=N_("The owning department's id; unset, its first registration claims it.")),
    ] = None,
    description: Annotated[str, typer.Option(help=N_("What the domain covers."))] = "",
) -> None:
    body = {"id": domain_id, "name": name, "description": description, "owner_department_id": owner}
    call.show(call.api.post("/catalog/v1/domains", body), _domain_columns())


# --- departments --------------------------------------------------------------------------------


def _department_columns() -> list[tuple[str, str]]:
    return [("id", _("ID")), ("name", _("Name")), ("kind", _("Kind")), ("domains", _("Domains"))]


@verb(departments, "list", N_("List the departments and their domains."))
def list_departments(call: Call) -> None:
    call.show(call.api.get("/catalog/v1/departments"), _department_columns())


@verb(departments, "create", N_("Create a department (admin); it owns the unowned domains it names."))
def create_department(
    call: Call,
    department_id: Annotated[str, typer.Argument(metavar="ID", help=N_("e.g. water-authority"))],
    name: Name,
    kind: Annotated[DepartmentKind, typer.Option(help=N_("What sort of department it is."))],
    domain: Annotated[
        list[str] | None, typer.Option(help=N_("A domain it publishes in (repeat for more)."))
    ] = None,
    email: Annotated[str | None, typer.Option(help=N_("A contact address."))] = None,
) -> None:
    body = {
        "id": department_id,
        "name": name,
        "kind": kind.value,
        "domains": domain or [],
        "contact_email": email,
    }
    call.show(call.api.post("/catalog/v1/departments", body), _department_columns())


# --- principals ---------------------------------------------------------------------------------


def _principal_columns() -> list[tuple[str, str]]:
    return [
        ("id", _("ID")),
        ("kind", _("Kind")),
        ("name", _("Name")),
        ("department_id", _("Department")),
        ("status", _("Status")),
    ]


@verb(principals, "list", N_("List the principals (admin)."))
def list_principals(
    call: Call, kind: Annotated[PrincipalKind | None, typer.Option(help=N_("Only this kind."))] = None
) -> None:
    call.show(call.api.get("/catalog/v1/principals", kind=kind.value if kind else None), _principal_columns())


@verb(
    principals,
    "create",
    N_("Create a principal (admin): an approver or a department needs --department. Then issue its key."),
)
def create_principal(
    call: Call,
    principal_id: Annotated[str, typer.Argument(metavar="ID", help=N_("e.g. health-approver"))],
    kind: Annotated[PrincipalKind, typer.Option(help=N_("Its role."))],
    name: Name,
    department: Annotated[str | None, typer.Option(help=N_("The department it acts for."))] = None,
) -> None:
    body = {"id": principal_id, "kind": kind.value, "name": name, "department_id": department}
    call.show(call.api.post("/catalog/v1/principals", body), _principal_columns())
    call.say(_("next: citybase keys issue %(id)s") % {"id": principal_id})


# --- keys ---------------------------------------------------------------------------------------


def _key_columns() -> list[tuple[str, str]]:
    return [
        ("prefix", _("Prefix")),
        ("principal_id", _("Principal")),
        ("name", _("Name")),
        ("issued_by", _("Issued by")),
        ("created_at", _("Created")),
        ("revoked_at", _("Revoked")),
    ]


PrincipalArgument = Annotated[str, typer.Argument(metavar="PRINCIPAL", help=N_("The principal's id."))]


@verb(keys, "issue", N_("Issue an API key of a principal; it is shown once, only its hash is kept."))
def issue_key(
    call: Call,
    principal_id: PrincipalArgument,
    name: Annotated[str, typer.Option(help=N_("A label for the key, e.g. where it is used."))] = "",
) -> None:
    issued = call.api.post(f"/catalog/v1/principals/{segment(principal_id)}/keys", {"name": name})
    if call.as_json:
        call.show(issued, [])
        return
    call.say(_("API key of %(principal)s (shown once; only its hash is kept):") % {"principal": principal_id})
    call.console.print(issued["key"], soft_wrap=True, highlight=False)


@verb(keys, "list", N_("List a principal's keys, revoked ones included."))
def list_keys(call: Call, principal_id: PrincipalArgument) -> None:
    call.show(call.api.get(f"/catalog/v1/principals/{segment(principal_id)}/keys"), _key_columns())


@verb(keys, "revoke", N_("Revoke a key, and every key minted from it, everywhere within a second."))
def revoke_key(
    call: Call,
    principal_id: PrincipalArgument,
    prefix: Annotated[str, typer.Argument(help=N_("The key's prefix, as keys list shows it."))],
) -> None:
    revoked = call.api.delete(f"/catalog/v1/principals/{segment(principal_id)}/keys/{segment(prefix)}")
    call.show(revoked, _key_columns())


# --- login --------------------------------------------------------------------------------------


def login(
    url: Annotated[str, typer.Option(help=N_("The platform's URL."))] = connection.DEFAULT_URL,
    key: Annotated[str | None, typer.Option(help=N_("Your API key (asked for when not given)."))] = None,
    lang: LangOption = None,
) -> None:
    """Check a key against the platform and keep it, with the URL, in the config file (mode 0600)."""
    i18n.activate(connection.language(lang))
    key = key or typer.prompt(_("API key"), hide_input=True)
    with reaching(url, key) as api:
        me = api.get("/catalog/v1/me")
    path = connection.write_config(connection.Config(url=connection.platform_root(url), key=key))
    Console(soft_wrap=True, highlight=False).print(
        _("logged in to %(url)s as %(id)s (%(kind)s); saved in %(path)s")
        % {"url": connection.platform_root(url), "id": me["id"], "kind": me["kind"], "path": path}
    )


LOGIN_HELP = N_(
    "Check a key against the platform and keep it, with the URL, in the config file (mode 0600): "
    "~/.config/citybase/config.toml, or CITYBASE_CONFIG."
)


# --- admin reset-key ----------------------------------------------------------------------------


def reset_key(
    data_dir: Annotated[
        Path | None, typer.Option(help=N_("The data directory (CITYBASE_DATA_DIR; citybase up's .citybase)."))
    ] = None,
    principal: Annotated[str, typer.Option(help=N_("The admin principal whose keys to replace."))] = "admin",
    lang: LangOption = None,
) -> None:
    i18n.activate(connection.language(lang))
    from citybase.platform import NoAdmin, reset_admin_key
    from services.common.settings import Settings

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    try:
        reset = reset_admin_key(settings, principal)
    except NoAdmin as error:
        raise fail(str(error)) from None
    out = Console(soft_wrap=True, highlight=False)
    out.print(
        _("revoked %(count)s key(s) of %(principal)s: %(prefixes)s")
        % {"count": len(reset.revoked), "principal": principal, "prefixes": ", ".join(reset.revoked) or "-"}
    )
    out.print(_("[bold yellow]New admin API key (shown once; only its hash is kept):[/bold yellow]"))
    out.print(f"  {reset.key}")


RESET_KEY_HELP = N_(
    "Recover a lost admin key on the machine holding the platform's database: revoke the admin's "
    "keys and print a new one, once. Talks to the database, not to the API."
)
admin.command("reset-key", help=RESET_KEY_HELP, epilog=EXIT_CODES, cls=TranslatedCommand)(reset_key)
