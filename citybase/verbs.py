"""What every ``citybase <noun> <verb>`` shares: the options that say where and as whom it calls
(``--url``, ``--key``, ``--lang``, ``--json``), tables for people and JSON for scripts, a refusal
printed as the platform said it, the exit codes, and ``--help`` in the command's language.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, get_type_hints

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from citybase import connection
from citybase.connection import ConfigError, Connection, Refused, Unreachable
from services.common import i18n
from services.common.i18n import N_, _

OK = 0
REFUSED = 1
"""Exit code when the platform refused (a problem+json answer: 4xx)."""
USAGE = 2
"""Exit code of a command that could not run as asked: a wrong option, no key, an unreadable config."""
UNAVAILABLE = 3
"""Exit code when the platform did not answer, or failed (5xx)."""

EXIT_CODES = N_(
    "Exit codes: 0 done; 1 the platform refused (its problem is printed); 2 usage: a wrong option, "
    "no API key, an unreadable config file; 3 the platform did not answer or failed."
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        envvar="CITYBASE_URL",
        show_envvar=False,
        help=N_("The platform's URL (CITYBASE_URL, else the config file, else http://127.0.0.1:8000)."),
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        envvar="CITYBASE_API_KEY",
        show_envvar=False,
        help=N_("API key (CITYBASE_API_KEY, else the config file)."),
    ),
]


def _speak(_ctx: Any, _param: Any, value: str | None) -> str | None:
    i18n.activate(connection.language(value))
    return value


LangOption = Annotated[
    str | None,
    typer.Option(
        "--lang",
        is_eager=True,
        callback=_speak,
        help=N_("zh-CN or en (CITYBASE_LANG, else LC_ALL or LANG)."),
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help=N_("Print the platform's JSON answer, for scripts."))
]


# --- --help in the command's language ----------------------------------------------------------


def _translate(command: Any) -> None:
    # Typer's commands are its own copy of click's: read by their attributes, not their classes.
    if command.help:
        command.help = _(command.help)
    if command.short_help:
        command.short_help = _(command.short_help)
    if command.epilog:
        command.epilog = _(command.epilog)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = _(param.help)


class TranslatedCommand(TyperCommand):
    """A command whose help, written in English and marked ``N_``, is shown in the command's language."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _translate(self)
        super().format_help(ctx, formatter)


class TranslatedGroup(TyperGroup):
    """A group whose help and the one-line help of each of its commands are in the command's language."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _translate(self)
        for command in self.commands.values():
            if isinstance(command, TranslatedCommand | TranslatedGroup):
                _translate(command)
        super().format_help(ctx, formatter)


def noun(help: str) -> typer.Typer:
    """The group of a noun's verbs (``citybase grants ...``)."""
    return typer.Typer(help=help, epilog=EXIT_CODES, cls=TranslatedGroup, no_args_is_help=True)


# --- one verb -----------------------------------------------------------------------------------


@dataclass
class Call:
    """What a verb works with: the connection and how to print."""

    api: Connection
    as_json: bool
    console: Console

    def show(self, answer: Any, columns: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
        """``answer`` (one object or a list) as a table of ``columns`` (key, translated header), or
        as the JSON the platform answered with ``--json``."""
        if self.as_json:
            print(json.dumps(answer, indent=2, ensure_ascii=False))
            return
        rows = answer if isinstance(answer, list) else [answer]
        if not rows:
            self.console.print(_("(none)"))
            return
        table = Table(title=title, show_lines=False)
        for key, header in columns:
            # An identifier or a state is read (and copied) whole: only the other columns wrap.
            table.add_column(header, no_wrap=is_identifier(key) or key in WORDS, overflow="fold")
        for row in rows:
            table.add_row(*(cell(row, key) for key, _header in columns))
        self.console.print(table)

    def fields(self, answer: dict[str, Any], keys: Sequence[str]) -> None:
        """One object as ``name  value`` lines (JSON with ``--json``)."""
        if self.as_json:
            print(json.dumps(answer, indent=2, ensure_ascii=False))
            return
        table = Table(show_header=False, box=None)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for key in keys:
            table.add_row(key, cell(answer, key))
        self.console.print(table)

    def say(self, message: str) -> None:
        """A sentence for a person: on stderr with ``--json``, so that stdout stays JSON."""
        (Console(stderr=True, soft_wrap=True) if self.as_json else self.console).print(message)


WORDS = frozenset({"status", "kind", "mode", "outcome", "version", "duration_days"})
"""Columns of one short word each."""


def is_identifier(key: str) -> bool:
    last = key.rpartition(".")[2]
    return last in ("id", "prefix", "grant_id") or last.endswith("_id")


def is_moment(key: str) -> bool:
    last = key.rpartition(".")[2]
    return last.endswith("_at") or last == "valid_from"


def cell(row: dict[str, Any], key: str) -> str:
    """A value as a table shows it: lists joined, objects as compact JSON, a moment in the
    language's format to the second (UTC), nothing as a dash."""
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(item) if not isinstance(item, dict) else json.dumps(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if is_moment(key):
        return i18n.format_datetime(str(value))
    return str(value)


def print_refusal(refusal: Refused) -> None:
    """The problem's title, detail and each ``errors[].path: message``, on stderr."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    problem = refusal.problem
    title = problem.get("title") or ""
    detail = problem.get("detail") or ""
    err.print(f"[red]{refusal.status} {title}[/red]" + (f": {detail}" if detail and detail != title else ""))
    for error in problem.get("errors") or []:
        if isinstance(error, dict):
            err.print(f"  {error.get('path') or '/'}: {error.get('message', '')}")


def fail(message: str, code: int = USAGE) -> typer.Exit:
    """Print ``message`` on stderr and return the exit to raise."""
    Console(stderr=True, soft_wrap=True, highlight=False).print(f"[red]{message}[/red]")
    return typer.Exit(code)


@contextmanager
def reaching(
    url: str | None, key: str | None, *, needs_key: bool = True, timeout: float = 30.0
) -> Iterator[Connection]:
    """A connection from the options, the environment and the config file; a refusal or no answer
    ends the command with its exit code."""
    try:
        config = connection.read_config()
    except ConfigError as error:
        raise fail(str(error)) from None
    key = key or config.key
    if needs_key and not key:
        raise fail(_("an API key is needed: --key, CITYBASE_API_KEY or `citybase login`"))
    try:
        with Connection(url or config.url or connection.DEFAULT_URL, key, timeout=timeout) as api:
            yield api
    except Refused as refusal:
        print_refusal(refusal)
        raise typer.Exit(UNAVAILABLE if refusal.status >= 500 else REFUSED) from None
    except Unreachable as error:
        raise fail(str(error), UNAVAILABLE) from None


_COMMON = [
    inspect.Parameter("url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=UrlOption),
    inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=KeyOption),
    inspect.Parameter("lang", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=LangOption),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption),
]


def verb(group: typer.Typer, name: str, help: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``function(call, ...)`` as ``name`` in ``group``, with the options every verb takes
    (``--url``, ``--key``, ``--lang``, ``--json``) added to its own; ``help`` is marked ``N_``."""

    def register(function: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(function, include_extras=True)
        own = [
            parameter.replace(annotation=hints[parameter.name])
            for parameter in list(inspect.signature(function).parameters.values())[1:]
        ]

        @functools.wraps(function)
        def run(
            *args: Any, url: str | None, key: str | None, lang: str | None, as_json: bool, **kwargs: Any
        ) -> None:
            i18n.activate(connection.language(lang))
            with reaching(url, key) as api:
                function(Call(api, as_json, Console(soft_wrap=False, highlight=False)), *args, **kwargs)

        signature = inspect.Signature([*own, *_COMMON])
        run.__signature__ = signature  # type: ignore[attr-defined]
        run.__annotations__ = {
            parameter.name: parameter.annotation for parameter in signature.parameters.values()
        }
        group.command(name, help=help, epilog=EXIT_CODES, cls=TranslatedCommand)(run)
        return function

    return register
