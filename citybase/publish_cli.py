"""``citybase publish`` (a file into a dataset) and ``citybase demo`` (synthetic live traffic).

Both push records through :class:`citybase.client.Publisher`, so they retry the way a
publisher's own code would: with an Idempotency-Key per batch, honouring Retry-After.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from citybase.client import BatchResult, FileResult, Publisher, PublishError, file_format
from citybase.demo import (
    EXAMPLE_DATASETS,
    BatchFailed,
    BatchOutcome,
    DatasetStats,
    DemoStats,
    FaultRates,
    RecordGenerator,
    example_contract_files,
    stream,
)
from services.common import i18n
from services.common.i18n import N_, _
from services.common.topics import dead_letter_topic

console = Console(soft_wrap=True)

USAGE = 2
"""Exit code of a command that could not run as asked: usage, key, unknown dataset."""
REJECTED = 1
"""Exit code when records (or a whole batch, for its content) were rejected."""
UNAVAILABLE = 3
"""Exit code when the platform did not answer, or stayed busy through every retry."""

KeyOption = Annotated[
    str | None,
    typer.Option(envvar="CITYBASE_API_KEY", help=N_("API key of the owning department, or an admin key.")),
]


def _exit_code(error: PublishError) -> int:
    if error.status is None or error.retryable:
        return UNAVAILABLE
    if error.status in (401, 403, 404):
        return USAGE
    return REJECTED


def _print_problem(error: PublishError) -> None:
    console.print(f"[red]{error}[/red]")
    for item in error.errors:
        console.print(
            f"  {item.get('path') or '/'}  [bold]{item.get('rule', '')}[/bold]  {item.get('message', '')}"
        )


def need_key(key: str | None) -> str:
    if not key:
        console.print("[red]" + _("an API key is needed: --key or CITYBASE_API_KEY") + "[/red]")
        raise typer.Exit(USAGE)
    return key


# --- citybase publish ----------------------------------------------------------------------------

PUBLISH_HELP = N_(
    "Publish FILE to a dataset in batches, and list the rows the contract rejected.\n\n"
    "Exit code 0 when every record was accepted, 1 when some were rejected (they are on "
    "dlq.<dataset>), 2 on a usage or key problem, 3 when the platform could not be reached."
)


def publish(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help=N_("A .csv, .ndjson/.jsonl or .json (array) file."),
        ),
    ],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help=N_("The dataset to publish to."))],
    url: Annotated[str, typer.Option(help=N_("Ingest's base URL."))] = "http://127.0.0.1:8000/ingest",
    key: KeyOption = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help=N_("Records per request."))] = 1000,
    show: Annotated[int, typer.Option(min=0, help=N_("How many rejected rows to list."))] = 20,
    timeout: Annotated[float, typer.Option(min=0.1, help=N_("Seconds to wait for each answer."))] = 30.0,
) -> None:
    """``citybase publish`` (:data:`PUBLISH_HELP`)."""
    api_key = need_key(key)
    try:
        file_format(file)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="FILE") from error
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(
            "{task.fields[sent]} sent  [green]{task.fields[accepted]} accepted[/green]  "
            "[red]{task.fields[rejected]} rejected[/red]"
        ),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task(file.name, total=max(1, file.stat().st_size), sent=0, accepted=0, rejected=0)

    def advance(_: BatchResult, totals: FileResult) -> None:
        progress.update(
            task,
            completed=totals.bytes_read,
            sent=totals.sent,
            accepted=totals.accepted,
            rejected=totals.rejected,
        )

    with Publisher(url, api_key, timeout=timeout, language=i18n.tag()) as publisher, progress:
        try:
            totals = publisher.publish_file(dataset, file, batch_size=batch_size, on_batch=advance)
        except PublishError as error:
            progress.stop()
            if error.partial is not None and error.partial.batches:
                _print_totals(error.partial)
            _print_problem(error)
            raise typer.Exit(_exit_code(error)) from error
        except (ValueError, UnicodeDecodeError) as error:
            progress.stop()
            console.print(f"[red]{file}: {error}[/red]")
            raise typer.Exit(REJECTED) from error
        progress.update(task, completed=totals.bytes_total)
    _print_totals(totals)
    if totals.rejected:
        _print_rejected(totals, show)
        raise typer.Exit(REJECTED)


def _print_totals(totals: FileResult) -> None:
    replayed = (
        _(", %(count)s replayed") % {"count": totals.replayed_batches} if totals.replayed_batches else ""
    )
    duplicates = _(", %(count)s duplicates") % {"count": totals.duplicates} if totals.duplicates else ""
    colour = "green" if totals.all_accepted else "yellow"
    counts = _("%(sent)s records, %(accepted)s accepted, %(rejected)s rejected") % {
        "sent": totals.sent,
        "accepted": totals.accepted,
        "rejected": totals.rejected,
    }
    batches = _("%(count)s batches") % {"count": totals.batches}
    console.print(
        f"[{colour}]{totals.path.name} → {totals.dataset}: {counts}{duplicates}[/{colour}] ({batches}{replayed})"
    )


def _print_rejected(totals: FileResult, show: int) -> None:
    rows = totals.rejected_rows
    if show == 0 or not rows:
        return
    title = _("Rejected rows (%(shown)s of %(count)s errors)") % {
        "shown": min(show, len(rows)),
        "count": len(rows),
    }
    table = Table(title=title, title_justify="left")
    table.add_column(_("line"), justify="right")
    table.add_column(_("field"))
    table.add_column(_("rule"), style="bold")
    table.add_column(_("message"), overflow="fold")
    for row in rows[:show]:
        table.add_row(str(row.line), row.path or "/", row.rule, row.message)
    console.print(table)
    if totals.errors_truncated:
        console.print(
            "[yellow]"
            + _("ingest listed only the first errors of some batches; the counts are exact")
            + "[/yellow]"
        )
    console.print(
        _("rejected records are on %(topic)s, with their reasons")
        % {"topic": dead_letter_topic(totals.dataset)}
    )


# --- citybase demo -------------------------------------------------------------------------------

DEMO_HELP = N_(
    "Stream synthetic records of the example datasets into a running platform, with faults.\n\n"
    "Records are valid by default; the --*-rate options inject faults into that share of records "
    "(one fault per record, rates add up): nulls in required fields, out-of-range values, bad enum "
    "values and schema breaks are rejected by ingest; duplicate keys and late events are accepted "
    "and show in the quality scores."
)


def _rate(share: str) -> Any:
    """The option of one fault's rate; ``share`` (marked ``N_``) says which records it touches."""
    return typer.Option(min=0.0, max=1.0, help=share)


class Catalog:
    """The few catalog calls the demo needs."""

    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept-Language": i18n.tag()},
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def _authenticated(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 401:
            console.print(
                "[red]"
                + _("the catalog refused the key (401): %(detail)s") % {"detail": _detail(response)}
                + "[/red]"
            )
            raise typer.Exit(USAGE)
        return response

    def ensure_departments(self, departments_file: Path) -> list[str]:
        """Create the example departments (and their domains) that are missing; admin only."""
        notes: list[str] = []
        for entry in yaml.safe_load(departments_file.read_text(encoding="utf-8")):
            if self._authenticated(self.http.get(f"/v1/departments/{entry['id']}")).status_code == 200:
                continue
            for domain in entry.get("domains") or []:
                self.http.post("/v1/domains", json={"id": domain, "name": domain.title()})  # 409: exists
            created = self._authenticated(self.http.post("/v1/departments", json=entry))
            if created.status_code == 201:
                notes.append(f"created department {entry['id']}")
            elif created.status_code != 409:
                notes.append(f"department {entry['id']}: {created.status_code} {_detail(created)}")
        return notes

    def register(self, contract: Path) -> str:
        """Register one contract file; "registered", "present" (409: exists or not higher) or why not."""
        response = self._authenticated(
            self.http.post(
                "/v1/contracts", content=contract.read_bytes(), headers={"Content-Type": "application/yaml"}
            )
        )
        if response.status_code == 201:
            return "registered"
        if response.status_code == 409:
            return "present"
        return f"{contract.parent.name} {contract.stem}: {response.status_code} {_detail(response)}"

    def current_contract(self, dataset_id: str) -> dict[str, Any] | None:
        dataset = self._authenticated(self.http.get(f"/v1/datasets/{dataset_id}"))
        if dataset.status_code != 200 or not dataset.json().get("current_version"):
            return None
        version = dataset.json()["current_version"]
        found = self._authenticated(self.http.get(f"/v1/datasets/{dataset_id}/contract-versions/{version}"))
        return found.json() if found.status_code == 200 else None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    return str(body.get("detail") or body.get("title") or response.reason_phrase)


def _wait_until_ingest_knows(publisher: Publisher, dataset_id: str, deadline: float) -> str | None:
    """None once ingest takes records of the dataset from this key, else why not. A dataset
    registered a moment ago reaches ingest through platform.catalog: 404 until then."""
    while True:
        try:
            publisher.check(dataset_id)
        except PublishError as error:
            if error.status == 401:
                console.print(
                    "[red]" + _("ingest refused the key (401): %(error)s") % {"error": error} + "[/red]"
                )
                raise typer.Exit(USAGE) from error
            if error.status != 404 or time.monotonic() > deadline:
                return str(error)
        else:
            return None
        time.sleep(0.25)


def _render(stats: DemoStats, versions: dict[str, str], caption: str) -> Table:
    table = Table(caption=caption, caption_justify="left")
    for name in ("dataset", "contract"):
        table.add_column(name)
    for name in ("sent", "accepted", "rejected", "rejected %", "faults", "rec/s"):
        table.add_column(name, justify="right")
    table.add_column("state")

    def percent(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f}" if whole else "-"

    for name, item in stats.datasets.items():
        state = "[green]streaming[/green]"
        if item.stopped:
            state = f"[red]stopped: {item.stopped}[/red]"
        elif item.failed_batches:
            state = f"[yellow]{item.failed_batches} failed batches: {item.last_problem}[/yellow]"
        table.add_row(
            name,
            versions.get(name, ""),
            str(item.sent),
            f"[green]{item.accepted}[/green]",
            f"[red]{item.rejected}[/red]" if item.rejected else "0",
            percent(item.rejected, item.sent),
            str(sum(item.faults.values())),
            f"{stats.rate(item.sent):.1f}",
            state,
        )
    sent, rejected = stats.total("sent"), stats.total("rejected")
    table.add_section()
    table.add_row(
        "[bold]total[/bold]",
        "",
        f"[bold]{sent}[/bold]",
        f"[bold green]{stats.total('accepted')}[/bold green]",
        f"[bold red]{rejected}[/bold red]" if rejected else "0",
        percent(rejected, sent),
        str(sum(sum(item.faults.values()) for item in stats.datasets.values())),
        f"[bold]{stats.rate(sent):.1f}[/bold]",
        "",
    )
    return table


@contextmanager
def _live(enabled: bool, renderable: Table) -> Iterator[Live | None]:
    if not enabled:
        yield None
        return
    with Live(renderable, console=console, refresh_per_second=4, transient=False) as live:
        yield live


def demo(
    url: Annotated[
        str, typer.Option(help=N_("The platform's base URL (citybase up)."))
    ] = "http://127.0.0.1:8000",
    key: KeyOption = None,
    rate: Annotated[float, typer.Option(min=0.1, help=N_("Records per second, over all datasets."))] = 50.0,
    duration: Annotated[float, typer.Option(min=0, help=N_("Seconds to run; 0 runs until Ctrl-C."))] = 60.0,
    datasets: Annotated[
        str, typer.Option(help=N_("'all' (the five example datasets) or dataset ids, comma-separated."))
    ] = "all",
    null_rate: Annotated[float, _rate(N_("Share of records missing a required field (rejected)."))] = 0.0,
    out_of_range_rate: Annotated[
        float, _rate(N_("Share of records with a value beyond its bounds (rejected)."))
    ] = 0.0,
    bad_enum_rate: Annotated[
        float, _rate(N_("Share of records with a value outside its enumeration (rejected)."))
    ] = 0.0,
    duplicate_rate: Annotated[
        float, _rate(N_("Share of records repeating an earlier primary key (accepted)."))
    ] = 0.0,
    late_rate: Annotated[
        float, _rate(N_("Share of records with event times hours in the past (accepted)."))
    ] = 0.0,
    schema_break_rate: Annotated[
        float, _rate(N_("Share of records with a wrong type or an unknown field (rejected)."))
    ] = 0.0,
    seed: Annotated[
        int | None, typer.Option(help=N_("Seed of the generators; the same seed, the same records."))
    ] = None,
    register: Annotated[
        bool, typer.Option(help=N_("Register the example departments and contracts that are missing."))
    ] = True,
    json_summary: Annotated[
        bool, typer.Option("--json-summary", help=N_("Print the totals as one JSON line at the end."))
    ] = False,
    catalog_url: Annotated[
        str | None, typer.Option(help=N_("The catalog's base URL; default URL/catalog."))
    ] = None,
    ingest_url: Annotated[str | None, typer.Option(help=N_("Ingest's base URL; default URL/ingest."))] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help=N_("Seconds to wait for each answer."))] = 30.0,
) -> None:
    """``citybase demo`` (:data:`DEMO_HELP`)."""
    api_key = need_key(key)
    try:
        faults = FaultRates(
            null=null_rate,
            out_of_range=out_of_range_rate,
            bad_enum=bad_enum_rate,
            schema_break=schema_break_rate,
            duplicate=duplicate_rate,
            late=late_rate,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    wanted = (
        list(EXAMPLE_DATASETS)
        if datasets.strip() == "all"
        else [d.strip() for d in datasets.split(",") if d.strip()]
    )
    if not wanted:
        raise typer.BadParameter(_("name at least one dataset, or 'all'"), param_hint="--datasets")
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    base = url.rstrip("/")
    catalog = Catalog(catalog_url or f"{base}/catalog", api_key, timeout)
    publisher = Publisher(ingest_url or f"{base}/ingest", api_key, timeout=timeout, language=i18n.tag())
    try:
        generators, versions = _prepare(catalog, publisher, wanted, faults, seed, register)
        code = _run(
            publisher,
            generators,
            versions,
            rate=rate,
            duration=duration,
            seed=seed,
            json_summary=json_summary,
        )
    except httpx.TransportError as error:
        console.print(
            "[red]"
            + _("cannot reach the platform at %(url)s: %(error)s") % {"url": base, "error": repr(error)}
            + "[/red]"
        )
        raise typer.Exit(UNAVAILABLE) from error
    except KeyboardInterrupt:  # before streaming started; the stream itself stops cleanly
        console.print("[yellow]" + _("interrupted") + "[/yellow]")
        raise typer.Exit(130) from None
    finally:
        publisher.close()
        catalog.close()
    if code:
        raise typer.Exit(code)


def _prepare(
    catalog: Catalog,
    publisher: Publisher,
    wanted: list[str],
    faults: FaultRates,
    seed: int,
    register: bool,
) -> tuple[dict[str, RecordGenerator], dict[str, str]]:
    from citybase.platform import examples_dir

    examples = [name for name in wanted if name in EXAMPLE_DATASETS]
    if register and examples:
        notes = catalog.ensure_departments(examples_dir() / "departments.yaml")
        outcomes: Counter[str] = Counter()
        for contract_file in example_contract_files(examples_dir(), examples):
            outcome = catalog.register(contract_file)
            outcomes[outcome if outcome in ("registered", "present") else "failed"] += 1
            if outcome not in ("registered", "present"):
                notes.append(outcome)
        console.print(
            _("catalog: %(registered)s example contract versions registered, %(present)s already there")
            % {"registered": outcomes["registered"], "present": outcomes["present"]}
        )
        for note in notes:
            console.print(f"  [yellow]{note}[/yellow]")
    generators: dict[str, RecordGenerator] = {}
    versions: dict[str, str] = {}
    deadline = time.monotonic() + 15
    for dataset_id in wanted:
        contract = catalog.current_contract(dataset_id)
        if contract is None:
            console.print(
                "[red]"
                + _("%(dataset)s: no such dataset with a contract in the catalog; left out")
                % {"dataset": dataset_id}
                + "[/red]"
            )
            continue
        problem = _wait_until_ingest_knows(publisher, dataset_id, deadline)
        if problem is not None:
            console.print(
                "[red]"
                + _("%(dataset)s: ingest will not take records (%(problem)s); left out")
                % {"dataset": dataset_id, "problem": problem}
                + "[/red]"
            )
            continue
        generators[dataset_id] = RecordGenerator(
            contract["record_schema"],
            dataset_id,
            random.Random(f"{seed}/{dataset_id}"),
            faults=faults,
            primary_key=contract.get("primary_key") or None,
        )
        versions[dataset_id] = str(contract.get("version", ""))
    if not generators:
        console.print("[red]" + _("no dataset to stream to") + "[/red]")
        raise typer.Exit(USAGE)
    return generators, versions


def _run(
    publisher: Publisher,
    generators: dict[str, RecordGenerator],
    versions: dict[str, str],
    *,
    rate: float,
    duration: float,
    seed: int,
    json_summary: bool,
) -> int:
    def send(dataset_id: str, records: list[dict[str, Any]]) -> BatchOutcome:
        try:
            result = publisher.publish(dataset_id, records)
        except PublishError as error:
            if error.status == 401:
                raise
            # Retries are spent on 429/503/no answer: the next tick tries again. Anything else
            # (403, 404, 409 not writable, 422) will not change by sending more.
            raise BatchFailed(str(error), stop=not error.retryable) from error
        first_rules: dict[int, str] = {}
        for item in result.errors:
            first_rules.setdefault(item.index, item.rule)
        return BatchOutcome(result.accepted, result.rejected, result.duplicates, list(first_rules.values()))

    stats = DemoStats({name: DatasetStats(name) for name in generators}, time.monotonic())
    until = f"{duration:g} s" if duration else "Ctrl-C"
    target = f"target {rate:g} records/s over {len(generators)} datasets, seed {seed}"

    def caption(current: DemoStats) -> str:
        return f"{current.elapsed_s:.0f} s of {until} · {target}"

    interrupted = False
    with _live(console.is_terminal or not json_summary, _render(stats, versions, caption(stats))) as live:

        def refresh(current: DemoStats) -> None:
            if live is not None:
                live.update(_render(current, versions, caption(current)))

        try:
            stream(generators, send, rate=rate, duration_s=duration, on_tick=refresh, stats=stats)
        except KeyboardInterrupt:
            interrupted = True
            stats.elapsed_s = time.monotonic() - stats.started
            refresh(stats)
        except PublishError as error:
            console.print(
                "[red]" + _("ingest refused the key (401): %(error)s") % {"error": error} + "[/red]"
            )
            return USAGE
    if live is not None and not console.is_terminal:
        console.line()  # a Live that is not on a terminal ends its last render without a newline
    summary = stats.summary()
    console.print(
        (
            _(
                "stopped: %(sent)s records in %(elapsed).1f s (%(per_s)s/s): %(accepted)s accepted, "
                "%(rejected)s rejected (%(share).1f %%), %(lost)s lost"
            )
            if interrupted
            else _(
                "done: %(sent)s records in %(elapsed).1f s (%(per_s)s/s): %(accepted)s accepted, "
                "%(rejected)s rejected (%(share).1f %%), %(lost)s lost"
            )
        )
        % {
            "sent": summary["sent"],
            "elapsed": summary["elapsed_s"],
            "per_s": summary["records_per_s"],
            "accepted": summary["accepted"],
            "rejected": summary["rejected"],
            "share": 100 * summary["rejected_share"],
            "lost": summary["lost"],
        }
    )
    if json_summary:
        summary["seed"] = seed
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    failed = any(item.stopped or item.lost for item in stats.datasets.values())
    return REJECTED if failed else 0
