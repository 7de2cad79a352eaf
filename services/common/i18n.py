"""Chinese and English: the locale of a request, gettext catalogs, and locale formats.

Every user-facing string is written in English in the code and templates, marked for gettext
(``_("...")`` in Python, ``{% trans %}`` or ``_()`` in Jinja2), and translated in the catalogs under
``services/locale/<locale>/LC_MESSAGES/citybase.po`` (``make messages`` extracts the strings and
updates the catalogs; a test fails while any string has no Chinese translation).

The catalogs are read from the ``.po`` files and compiled in memory on first use, so a fresh
checkout needs no build step. The locale of the work in hand lives in a context variable: a web
request sets it from ``?lang=``, the language cookie or ``Accept-Language`` (:func:`negotiate`), the
CLI from ``--lang``, ``CITYBASE_LANG`` or ``LANG``; code that formats text reads it through
:func:`gettext` and the ``format_*`` helpers.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DOMAIN = "citybase"
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
SOURCE_LOCALE = "en"
LOCALES: tuple[str, ...] = ("zh_CN", "en")
"""What citybase speaks; the first a caller prefers wins, English when they prefer neither."""
DEFAULT_LOCALE = SOURCE_LOCALE
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}
"""Each language named in itself, as a language switch shows it."""

_current: ContextVar[str] = ContextVar("citybase_locale", default=DEFAULT_LOCALE)


def current() -> str:
    return _current.get()


@contextlib.contextmanager
def use(locale: str) -> Iterator[str]:
    """Speak ``locale`` (a supported one, else the default) for the work inside the block."""
    token = _current.set(supported(locale) or DEFAULT_LOCALE)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def activate(locale: str) -> str:
    """Speak ``locale`` from here on in this context (a request, a command)."""
    chosen = supported(locale) or DEFAULT_LOCALE
    _current.set(chosen)
    return chosen


def supported(tag: str | None) -> str | None:
    """The supported locale a language tag names (``zh-CN``, ``zh_Hans_CN``, ``zh``, ``en-GB``…)."""
    if not tag:
        return None
    try:
        parsed = Locale.parse(tag.strip().replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return None
    if parsed.language == "zh":
        # Shanghai's own script: Traditional Chinese (zh-TW, zh-Hant) is not served as Simplified.
        return "zh_CN" if parsed.script in (None, "Hans") and parsed.territory in (None, "CN", "SG") else None
    if parsed.language == "en":
        return "en"
    return None


def parse_accept_language(header: str | None) -> list[str]:
    """The language tags of an ``Accept-Language`` header, most preferred first (RFC 9110 12.5.4)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        if not tag or tag == "*":
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(*explicit: str | None, accept_language: str | None = None) -> str:
    """The locale to speak: the first supported explicit choice (``?lang=``, a cookie, a flag),
    else the first supported language of ``Accept-Language``, else English."""
    for choice in explicit:
        if found := supported(choice):
            return found
    for tag in parse_accept_language(accept_language):
        if found := supported(tag):
            return found
    return DEFAULT_LOCALE


def catalog_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(locale: str) -> NullTranslations:
    """The compiled catalog of ``locale`` (English is the source language: no catalog needed)."""
    path = catalog_path(locale)
    if locale == SOURCE_LOCALE or not path.exists():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: float) -> str:
    """The singular or plural form for ``n`` (a float counts by its whole part: 1.0 day is one)."""
    return translations(_current.get()).ngettext(singular, plural, int(n))


_ = gettext


def N_(message: str) -> str:
    """Marks a string for extraction where it is defined; it is translated where it is shown."""
    return message


class Sentence(str):
    """A sentence in the language of whoever reads it: an English template marked ``N_`` where it
    is written (``Sentence(N_("no dataset %(dataset)r"), dataset=dataset_id)``) and translated
    where it is shown, its named placeholders filled after translation.

    It is the English sentence itself (a ``str``: logs, exception messages, stored evidence and
    every comparison read it as before); :meth:`render` speaks the current locale. Values are not
    translated (identifiers, numbers, a library's reasons) unless they are Sentences themselves.
    """

    template: str
    values: dict[str, object]

    def __new__(cls, template: str, /, **values: object) -> Sentence:
        sentence = super().__new__(cls, template % values if values else template)
        sentence.template = template
        sentence.values = values
        return sentence

    def render(self) -> str:
        """The sentence in the current locale (a value that is itself a :class:`Sentence` too)."""
        translated = gettext(self.template)
        if not self.values:
            return translated
        return translated % {
            name: value.render() if isinstance(value, Sentence) else value
            for name, value in self.values.items()
        }


def reason_of(error: BaseException) -> str:
    """What ``error`` was raised with: a :class:`Sentence` as it is (to be shown in the reader's
    language), anything else as the error's text."""
    first = error.args[0] if len(error.args) == 1 else None
    return first if isinstance(first, Sentence) else str(error)


def render(text: str) -> str:
    """A :class:`Sentence` in the current locale; any other string as it is."""
    return text.render() if isinstance(text, Sentence) else text


def tag() -> str:
    """The current locale as a BCP 47 tag, for ``<html lang>`` and ``Content-Language``."""
    return _current.get().replace("_", "-")


def format_number(value: float | int | None, *, digits: int | None = None, empty: str = "—") -> str:
    """A number in the current locale's format (grouping, decimal sign); ``empty`` for None."""
    if value is None:
        return empty
    pattern = None if digits is None else "#,##0" + ("." + "0" * digits if digits else "")
    return babel_numbers.format_decimal(value, format=pattern, locale=_current.get())


def format_percent(value: float | None, *, empty: str = "—") -> str:
    if value is None:
        return empty
    return babel_numbers.format_percent(value, format="#,##0%", locale=_current.get())


def parse_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_datetime(value: datetime | str | None, *, empty: str = "—") -> str:
    """A moment to the second, in UTC, in the current locale's medium format (one style for every
    timestamp on a page: no microseconds, no mix of ``Z`` and ``+00:00``)."""
    moment = parse_datetime(value)
    if moment is None:
        return empty if value in (None, "") else str(value)
    return (
        babel_dates.format_datetime(
            moment.astimezone(UTC), format="medium", tzinfo=UTC, locale=_current.get()
        )
        + " UTC"
    )
