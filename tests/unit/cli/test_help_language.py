"""Every ``--help`` of the command line exists in Chinese and English: each command's and each
option's help is marked for gettext and has a zh_CN translation, and ``--help`` shows it in the
language of the environment."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from citybase.cli import app
from services.common import i18n

runner = CliRunner()


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in sorted(getattr(group, "commands", {}).items()):
        yield (*path, name), command
        yield from _commands(command, (*path, name))


def _help_texts(command: Any) -> Iterator[str]:
    for text in (command.help, command.short_help, command.epilog):
        if text:
            yield text
    for param in command.params:
        if getattr(param, "help", None):
            yield param.help


COMMANDS = [" ".join(path) for path, _command in _commands(typer.main.get_command(app))]


def test_the_walk_sees_the_commands_of_every_part_of_the_command_line() -> None:
    expected = {"up", "serve", "migrate", "publish", "demo", "scorecard", "audit verify", "login"}
    assert expected <= set(COMMANDS)
    assert {"grants narrow", "contracts register", "admin reset-key"} <= set(COMMANDS)


def test_every_help_text_has_a_chinese_translation() -> None:
    chinese = i18n.translations("zh_CN")
    root = typer.main.get_command(app)
    untranslated = {
        " ".join(path) or "citybase": text
        for path, command in [((), root), *_commands(root)]
        for text in _help_texts(command)
        if chinese.gettext(text) == text
    }
    assert not untranslated, f"mark these N_ and translate them (make messages): {untranslated}"


def _squeezed(text: str) -> str:
    """Text without the spaces, line breaks and box lines a help layout puts into it."""
    return re.sub(r"[\s│╭╮╰╯─]+", "", text)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_the_chinese_text_in_a_chinese_environment(command: str) -> None:
    path = command.split()
    target: Any = typer.main.get_command(app)
    for name in path:
        target = target.commands[name]
    with i18n.use("zh_CN"):
        expected = [i18n.gettext(text) for text in _help_texts(target)]
    result = runner.invoke(app, [*path, "--help"], env={"LANG": "zh_CN.UTF-8", "COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    shown = _squeezed(result.output)
    # the first sentence of each text: a layout may shorten what follows
    missing = [text for text in expected if _squeezed(re.split(r"[。；]", text)[0]) not in shown]
    assert not missing, result.output
