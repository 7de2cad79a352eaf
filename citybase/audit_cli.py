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
from services.common.i18n import N_, _
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
        console.print(
            "[red]"
            + _("no embedded bus at %(path)s: pass --bus-url or --checkpoints") % {"path": parts.path}
            + "[/red]"
        )
        raise typer.Exit(2)
    bus = bus_from_url(url, client_id="citybase-audit")
    try:
        source = _("%(topic)s on %(url)s") % {"topic": catalog_events.TOPIC, "url": url}
        return audit.published_checkpoints(bus), source
    except BusError as error:
        console.print(
            "[red]"
            + _("cannot read the audit checkpoints on %(url)s: %(error)s") % {"url": url, "error": error}
            + "[/red]"
        )
        raise typer.Exit(2) from None
    finally:
        bus.close()


def _from_file(path: Path) -> tuple[list[audit.Checkpoint], str]:
    try:
        with path.open(encoding="utf-8") as lines:
            return audit.read_checkpoints(lines), str(path)
    except (OSError, ValueError) as error:
        console.print(
            "[red]"
            + _("cannot read the checkpoints of %(path)s: %(error)s") % {"path": path, "error": error}
            + "[/red]"
        )
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
    """``citybase audit verify``: the trail against checkpoints the database cannot rewrite."""
    published, source = _from_file(checkpoints) if checkpoints is not None else _published(bus_url)
    engine = _engine(database_url)
    try:
        with db.session_factory(engine)() as session:
            report = audit.verify(session, published, source=source)
    finally:
        engine.dispose()
    if report.ok:
        console.print(
            "[green]"
            + _("audit trail intact")
            + "[/green]: "
            + _(
                "%(entries)s entries, %(checkpoints)s checkpoints, head %(seq)s %(hash)s; "
                "%(published)s published checkpoints from %(source)s match, the last at entry %(last)s"
            )
            % {
                "entries": report.entries_checked,
                "checkpoints": report.checkpoints,
                "seq": report.head_seq,
                "hash": report.head_hash,
                "published": report.published_checkpoints,
                "source": source,
                "last": report.last_published_seq,
            }
        )
        return
    assert report.first_break is not None
    since = report.first_break.since_seq
    values = {"entries": report.entries_checked, "since": since}
    console.print(
        "[red]"
        + _("audit trail broken at entry %(seq)s") % {"seq": report.first_break.seq}
        + f"[/red]: {report.first_break.reason} "
        + (
            _("(%(entries)s entries before it check out; the change lies after entry %(since)s)") % values
            if since is not None
            else _("(%(entries)s entries before it check out)") % values
        )
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
    """``citybase audit export-checkpoints``: the published checkpoints, for an offline verifier."""
    published, source = _published(bus_url)
    with output.open("w", encoding="utf-8") as out:
        count = audit.write_checkpoints(published, out)
    console.print(
        _("%(count)s checkpoints from %(source)s written to %(path)s")
        % {"count": count, "source": source, "path": output}
    )


@app.command(
    help=N_("Record the head of the chain now (the catalog also does it periodically)."),
    cls=TranslatedCommand,
)
def checkpoint(database_url: DatabaseOption = None) -> None:
    """``citybase audit checkpoint``: a checkpoint now rather than at the catalog's next one."""
    engine = _engine(database_url)
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            # The checkpoint event waits in the outbox until the catalog relays it.
            point = audit.checkpoint(session, Outbox(outbox))
            message = (
                _("checkpoint at entry %(seq)s: %(hash)s") % {"seq": point.seq, "hash": point.hash}
                if point
                else _("the head is already checkpointed")
            )
    finally:
        engine.dispose()
    console.print(message)
