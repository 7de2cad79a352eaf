"""``citybase audit``: check the catalog's audit trail end to end."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from services.catalog.audit import service as audit
from services.catalog.models import outbox
from services.common import db
from services.common.outbox import Outbox
from services.common.settings import Settings

app = typer.Typer(help="The audit trail: verify its hash chain, checkpoint its head.", no_args_is_help=True)
console = Console()

DatabaseOption = Annotated[
    str | None,
    typer.Option(help="The catalog's database URL (default CITYBASE_DATABASE_URL or the embedded one)."),
]


def _engine(database_url: str | None) -> Engine:
    settings = Settings(database_url=database_url) if database_url else Settings()
    return db.create_db_engine(settings.database_url)


@app.command()
def verify(database_url: DatabaseOption = None) -> None:
    """Recompute the hash chain; exit 1 and name the first entry that does not match."""
    engine = _engine(database_url)
    try:
        with db.session_factory(engine)() as session:
            report = audit.verify(session)
    finally:
        engine.dispose()
    if report.ok:
        console.print(
            f"[green]audit trail intact[/green]: {report.entries_checked} entries, "
            f"{report.checkpoints} checkpoints, head {report.head_seq} {report.head_hash}"
        )
        return
    assert report.first_break is not None
    console.print(
        f"[red]audit trail broken at entry {report.first_break.seq}[/red]: {report.first_break.reason} "
        f"({report.entries_checked} entries before it check out)"
    )
    raise typer.Exit(1)


@app.command()
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
