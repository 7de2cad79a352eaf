"""``citybase audit``: check the catalog's audit trail end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from citybase.verbs import TranslatedCommand, TranslatedGroup
from services.catalog.audit import service as audit
from services.catalog.models import outbox
from services.common import catalog_events, db
from services.common.bus import BusError, bus_from_url
from services.common.i18n import N_
from services.common.outbox import Outbox
from services.common.settings import Settings

app = typer.Typer(
    help=N_("The audit trail: verify its hash chain, checkpoint its head, export the published checkpoints."),
    no_args_is_help=True,
    cls=TranslatedGroup,
)
console = Console()

DatabaseOption = Annotated[
    str | None,
    typer.Option(help=N_("The catalog's database URL (default CITYBASE_DATABASE_URL or the embedded one).")),
]


BusOption = Annotated[
    str | None,
    typer.Option(help=N_("The bus holding platform.catalog (default CITYBASE_BUS_URL or the embedded one).")),
]


def _engine(database_url: str | None) -> Engine:
    settings = Settings(database_url=database_url) if database_url else Settings()
    return db.create_db_engine(settings.database_url)


def _published(bus_url: str | None) -> tuple[list[audit.Checkpoint], str]:
    """The checkpoints on the bus's platform.catalog; exit 2 if it cannot be read."""
    url = bus_url or Settings().bus_url
    parts = urlsplit(url)
    if parts.scheme == "embedded" and not Path(parts.path).is_file():
        # Opening it would create an empty bus, which would vouch for nothing.
        console.print(f"[red]no embedded bus at {parts.path}[/red]: pass --bus-url or --checkpoints")
        raise typer.Exit(2)
    bus = bus_from_url(url, client_id="citybase-audit")
    try:
        return audit.published_checkpoints(bus), f"{catalog_events.TOPIC} on {url}"
    except BusError as error:
        console.print(f"[red]cannot read the audit checkpoints on {url}[/red]: {error}")
        raise typer.Exit(2) from None
    finally:
        bus.close()


def _from_file(path: Path) -> tuple[list[audit.Checkpoint], str]:
    try:
        with path.open(encoding="utf-8") as lines:
            return audit.read_checkpoints(lines), str(path)
    except (OSError, ValueError) as error:
        console.print(f"[red]cannot read the checkpoints of {path}[/red]: {error}")
        raise typer.Exit(2) from None


@app.command(
    help=N_(
        "Recompute the hash chain, compare it with the checkpoints published out of the database "
        "(the bus, or an exported file); exit 1 and name the first entry that does not match."
    ),
    cls=TranslatedCommand,
)
def verify(
    database_url: DatabaseOption = None,
    bus_url: BusOption = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            help=N_("Compare with the checkpoints of this file (from export-checkpoints) instead of the bus.")
        ),
    ] = None,
) -> None:
    """Recompute the hash chain, compare it with the checkpoints published out of the database
    (the bus, or an exported file); exit 1 and name the first entry that does not match."""
    published, source = _from_file(checkpoints) if checkpoints is not None else _published(bus_url)
    engine = _engine(database_url)
    try:
        with db.session_factory(engine)() as session:
            report = audit.verify(session, published, source=source)
    finally:
        engine.dispose()
    if report.ok:
        console.print(
            f"[green]audit trail intact[/green]: {report.entries_checked} entries, "
            f"{report.checkpoints} checkpoints, head {report.head_seq} {report.head_hash}; "
            f"{report.published_checkpoints} published checkpoints from {source} match, "
            f"the last at entry {report.last_published_seq}"
        )
        return
    assert report.first_break is not None
    since = report.first_break.since_seq
    console.print(
        f"[red]audit trail broken at entry {report.first_break.seq}[/red]: {report.first_break.reason} "
        f"({report.entries_checked} entries before it check out"
        + (f"; the change lies after entry {since})" if since is not None else ")")
    )
    raise typer.Exit(1)


@app.command(
    "export-checkpoints",
    help=N_(
        "Write the checkpoints published on platform.catalog to a file, one JSON object a line, for a "
        "verifier with no access to the bus (citybase audit verify --checkpoints FILE)."
    ),
    cls=TranslatedCommand,
)
def export_checkpoints(
    output: Annotated[Path, typer.Option("--output", "-o", help=N_("The JSON-lines file to write."))],
    bus_url: BusOption = None,
) -> None:
    """Write the checkpoints published on platform.catalog to a file, one JSON object a line, for a
    verifier with no access to the bus (``citybase audit verify --checkpoints FILE``)."""
    published, source = _published(bus_url)
    with output.open("w", encoding="utf-8") as out:
        count = audit.write_checkpoints(published, out)
    console.print(f"{count} checkpoints from {source} written to {output}")


@app.command(
    help=N_("Record the head of the chain now (the catalog also does it periodically)."),
    cls=TranslatedCommand,
)
def checkpoint(database_url: DatabaseOption = None) -> None:
    """Record the head of the chain now (the catalog also does it periodically)."""
    engine = _engine(database_url)
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            # The checkpoint event waits in the outbox until the catalog relays it.
            point = audit.checkpoint(session, Outbox(outbox))
            message = (
                f"checkpoint at entry {point.seq}: {point.hash}"
                if point
                else "the head is already checkpointed"
            )
    finally:
        engine.dispose()
    console.print(message)
