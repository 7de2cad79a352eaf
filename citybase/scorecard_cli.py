"""``citybase scorecard``: a department's or a scenario's scorecard, as JSON, CSV or HTML.

Reads quality's tables and replays ``platform.catalog`` (for who owns what and the grants), so it
needs no running service: point it at the platform's database and bus (``CITYBASE_DATABASE_URL``,
``CITYBASE_BUS_URL``, or the embedded defaults under the data directory).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from fastapi.encoders import jsonable_encoder
from rich.console import Console

from services.common import db, topics
from services.common.bus import bus_from_url
from services.common.problems import Problem
from services.common.readmodel import ReadModel
from services.common.settings import Settings
from services.quality import scorecards
from services.quality.projection import QualityCatalog
from services.quality.settings import QualitySettings

console = Console(stderr=True)


class CardFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


def render(card: dict[str, Any], format: CardFormat) -> str:
    if format is CardFormat.csv:
        return scorecards.to_csv(card)
    if format is CardFormat.html:
        return scorecards.to_html(card)
    return json.dumps(jsonable_encoder(card), indent=2, ensure_ascii=False) + "\n"


def scorecard(
    department: Annotated[str | None, typer.Option(help="A department id, e.g. health-commission.")] = None,
    scenario: Annotated[str | None, typer.Option(help="A scenario id (instead of --department).")] = None,
    period: Annotated[str, typer.Option(help="How far back: 30d, 12h, 2w (at most a year).")] = "30d",
    format: Annotated[
        CardFormat, typer.Option(help="json, csv or html (one self-contained page).")
    ] = CardFormat.json,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Quality's database (default CITYBASE_DATABASE_URL).")
    ] = None,
    bus_url: Annotated[str | None, typer.Option(help="The bus (default CITYBASE_BUS_URL).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for platform.catalog.")] = 30.0,
) -> None:
    """Quality per dimension, SLA breaches and utilization of a department's datasets or of a
    scenario, over a period."""
    if (department is None) == (scenario is None):
        raise typer.BadParameter("give exactly one of --department and --scenario")
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if bus_url:
        overrides["bus_url"] = bus_url
    settings = Settings(**overrides)
    try:
        span = scorecards.parse_period(period)
    except Problem as problem:
        raise typer.BadParameter(str(problem.detail), param_hint="--period") from problem
    engine = db.create_db_engine(settings.database_url)
    bus = bus_from_url(settings.bus_url, client_id="citybase-scorecard")
    catalog = QualityCatalog()
    read_model = ReadModel(bus, topics.CATALOG_SPEC, catalog, name="scorecard-catalog")
    try:
        read_model.start()
        if not read_model.wait_caught_up(timeout):
            console.print(f"[red]platform.catalog was not read within {timeout:g} s[/red]")
            raise typer.Exit(2)
        now = datetime.now(UTC)
        with db.session_factory(engine)() as session:
            if department is not None:
                card = scorecards.department_scorecard(
                    session, catalog, QualitySettings(), department, span, now
                )
            else:
                assert scenario is not None
                card = scorecards.scenario_scorecard(session, catalog, QualitySettings(), scenario, span, now)
    except Problem as problem:
        console.print(f"[red]{problem.detail or problem.title}[/red]")
        raise typer.Exit(1) from problem
    finally:
        read_model.stop()
        bus.close()
        engine.dispose()
    text = render(card, format)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"scorecard written to {output}")
