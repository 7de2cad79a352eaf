"""The ``citybase`` command line."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from citybase import (
    access_cli,
    admin_cli,
    connection,
    evaluation_cli,
    feeds_cli,
    indicators_cli,
    needs_cli,
    programme_cli,
)
from citybase.audit_cli import app as audit_app
from citybase.contracts_cli import app as contracts_app
from citybase.publish_cli import DEMO_HELP, PUBLISH_HELP, demo, publish
from citybase.scorecard_cli import SCORECARD_HELP, scorecard
from citybase.verbs import EXIT_CODES, LangOption, TranslatedCommand, TranslatedGroup
from services.common import i18n, logs
from services.common.i18n import N_, _
from services.common.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from services.feeds.settings import FeedsSettings

app = typer.Typer(
    help=N_("citybase: the digital base of a city."),
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    cls=TranslatedGroup,
    # Click's own help layout: rich's tables cut long option names at 80 columns.
    rich_markup_mode=None,
)
app.add_typer(contracts_app, name="contracts")
for name, group in {
    "domains": admin_cli.domains,
    "departments": admin_cli.departments,
    "principals": admin_cli.principals,
    "keys": admin_cli.keys,
    "scenarios": access_cli.scenarios,
    "requests": access_cli.requests,
    "grants": access_cli.grants,
    "lists": programme_cli.lists,
    "applicants": programme_cli.applicants,
    "proposals": programme_cli.proposals,
    "needs": needs_cli.needs,
    "evaluation": evaluation_cli.evaluation,
    "indicators": indicators_cli.indicators,
    "subscriptions": feeds_cli.subscriptions,
    "webhooks": feeds_cli.webhooks,
    "admin": admin_cli.admin,
}.items():
    app.add_typer(group, name=name)
app.command("login", help=admin_cli.LOGIN_HELP, cls=TranslatedCommand)(admin_cli.login)
app.add_typer(audit_app, name="audit")
app.command("publish", help=PUBLISH_HELP, cls=TranslatedCommand)(publish)
app.command("demo", help=DEMO_HELP, cls=TranslatedCommand)(demo)
app.command("scorecard", help=SCORECARD_HELP, cls=TranslatedCommand)(scorecard)
console = Console()


@app.callback()
def speak(lang: LangOption = None) -> None:
    """citybase: the digital base of a city."""
    i18n.activate(connection.language(lang))


class ServiceName(StrEnum):
    catalog = "catalog"
    ingest = "ingest"
    feeds = "feeds"
    quality = "quality"


def _settings(host: str | None, port: int | None, data_dir: Path | None) -> Settings:
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    return Settings(**overrides)  # type: ignore[arg-type]


HostOption = Annotated[str | None, typer.Option(help=N_("Bind address (CITYBASE_HOST)."))]
PortOption = Annotated[int | None, typer.Option(help=N_("Port (CITYBASE_PORT)."))]
DataDirOption = Annotated[Path | None, typer.Option(help=N_("Data directory (CITYBASE_DATA_DIR)."))]


@app.command(
    help=N_("Serve the whole platform in one process (embedded defaults: SQLite and the embedded bus)."),
    cls=TranslatedCommand,
)
def up(
    host: HostOption = None,
    port: PortOption = None,
    data_dir: DataDirOption = None,
    examples: Annotated[
        bool, typer.Option(help=N_("Load the example contracts on an empty catalog."))
    ] = True,
) -> None:
    """``citybase up``: the platform on one machine, a newcomer's first command."""
    import uvicorn

    from citybase.platform import create_platform_app, prepare

    settings = _settings(host, port, data_dir)
    logs.configure(settings.log_level)
    feeds_settings = _feeds_settings(settings, one_process=True)
    prepared = prepare(settings, load_examples=examples)
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold]citybase[/bold] on {base}")
    console.print(f"  database {settings.database_url}\n  bus      {settings.bus_url}", soft_wrap=True)
    for name in ServiceName:
        console.print(f"  {name.value:8} {base}/{name.value}/docs")
    console.print(f"  console  {base}/console/  " + _("(log in with an API key)"))
    if prepared.examples:
        console.print(
            "  " + _("loaded %(count)s example contract versions") % {"count": len(prepared.examples)}
        )
    if prepared.admin_key:
        console.print(
            "\n" + _("[bold yellow]Admin API key (shown once; only its hash is kept):[/bold yellow]") + "\n"
            f"  {prepared.admin_key}\n"
            + _("  then: citybase login --url %(url)s --key %(key)s")
            % {"url": base, "key": prepared.admin_key}
            + "\n"
            f"  curl -H 'Authorization: Bearer {prepared.admin_key}' {base}/catalog/v1/datasets\n",
            soft_wrap=True,
        )
    uvicorn.run(
        create_platform_app(settings, feeds_settings=feeds_settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
    )


SERVED_SERVICE_ENV = "CITYBASE_SERVED_SERVICE"
"""Names the service that each worker process of ``serve --workers N`` builds (``served_app``)."""


@app.command(
    help=N_("Serve one service in its own process (deployments: Kafka and PostgreSQL via CITYBASE_*)."),
    cls=TranslatedCommand,
)
def serve(
    service: ServiceName,
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help=N_(
                "Processes serving the service on one port (the kernel spreads connections). "
                "More than one needs Kafka: the embedded bus belongs to one process."
            ),
        ),
    ] = 1,
) -> None:
    """``citybase serve SERVICE``: one service of a deployment."""
    import uvicorn

    settings = _settings(host, port, None)
    logs.configure(settings.log_level)
    if service is ServiceName.feeds:
        _feeds_settings(settings)
    if workers == 1:
        from citybase.platform import SERVICE_FACTORIES

        uvicorn.run(SERVICE_FACTORIES[service.value](settings), host=settings.host, port=settings.port)
        return
    if not settings.bus_url.startswith("kafka://"):
        console.print(
            "[red]--workers above 1 needs CITYBASE_BUS_URL=kafka://...: the embedded bus is one process's"
        )
        raise typer.Exit(2)
    if settings.migrate_on_start:
        # Once, here, rather than racing in every worker.
        _migrate(settings, [service.value])
        os.environ["CITYBASE_MIGRATE_ON_START"] = "false"
    os.environ[SERVED_SERVICE_ENV] = service.value
    uvicorn.run(
        "citybase.cli:served_app", factory=True, workers=workers, host=settings.host, port=settings.port
    )


def _feeds_settings(settings: Settings, *, one_process: bool = False) -> FeedsSettings:
    """Feeds' settings with their secret, or exit 2 saying why there is none, before uvicorn starts:
    a deployment (Kafka or PostgreSQL) of ``serve`` must set one; ``up`` (``one_process``) and one
    machine use the data directory's, made here on first start."""
    from services.common.secret_file import MissingSecret
    from services.feeds.settings import FeedsSettings

    try:
        return FeedsSettings().with_secret(settings, one_process=one_process)
    except (MissingSecret, ValueError) as error:
        console.print(f"[red]feeds cannot start: {error}", soft_wrap=True)
        raise typer.Exit(2) from None


def served_app() -> FastAPI:
    """The app of one worker process of ``serve --workers N``: the service named in
    ``CITYBASE_SERVED_SERVICE``, with settings from the environment like ``serve``'s."""
    from citybase.platform import SERVICE_FACTORIES

    settings = Settings()
    logs.configure(settings.log_level)
    return SERVICE_FACTORIES[os.environ[SERVED_SERVICE_ENV]](settings)


def _migrate(settings: Settings, services: list[str]) -> None:
    from citybase.platform import SERVICE_FACTORIES
    from services.common import db

    settings.ensure_data_dir()
    for name in services:
        spec = SERVICE_FACTORIES[name](settings).state.spec
        db.migrate(settings.database_url, spec.migrations, spec.version_table)
        console.print(f"{name}: migrated to head")


@app.command(
    help=N_("Run database migrations explicitly (deployments set CITYBASE_MIGRATE_ON_START=false)."),
    cls=TranslatedCommand,
)
def migrate(
    service: Annotated[ServiceName | None, typer.Argument(help=N_("One service; default all."))] = None,
) -> None:
    """``citybase migrate``: each service's schema to its head revision."""
    from citybase.platform import SERVICE_FACTORIES

    _migrate(Settings(), [service.value] if service else list(SERVICE_FACTORIES))


def main() -> None:
    # Before the arguments are read, so that even `citybase --help` speaks the environment's language.
    i18n.activate(connection.language())
    app()


if __name__ == "__main__":
    main()
