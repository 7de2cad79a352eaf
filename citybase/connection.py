"""How the CLI's verbs reach a platform: its URL and an API key, the language its answers are in,
and the HTTP calls with their refusals.

The URL comes from ``--url``, else ``CITYBASE_URL``, else the config file, else
``http://127.0.0.1:8000`` (``citybase up``); the key from ``--key``, else ``CITYBASE_API_KEY``,
else the config file. The config file is ``~/.config/citybase/config.toml`` (``CITYBASE_CONFIG``
names another), written by ``citybase login`` with mode 0600 since it holds a key::

    url = "http://127.0.0.1:8000"
    key = "cbk_..."

Verbs speak to the platform root: each call names its service (``/catalog/v1/...``), as the
console does. Every call sends ``Accept-Language``, so the services' refusals come back in the
language the command speaks.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import httpx

from citybase.client import problem_document
from services.common import i18n
from services.common.i18n import _

DEFAULT_URL = "http://127.0.0.1:8000"
SERVICES = ("catalog", "ingest", "feeds", "quality")
TRANSPORT: httpx.BaseTransport | None = None
"""The transport of every connection; None is the network. Tests put an ``httpx.MockTransport``
or an in-process platform's transport here."""


class ConfigError(Exception):
    """The config file cannot be read as citybase's config."""


@dataclass(frozen=True, slots=True)
class Config:
    url: str | None = None
    key: str | None = None


def config_path() -> Path:
    named = os.environ.get("CITYBASE_CONFIG")
    if named:
        return Path(named).expanduser()
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(home) / "citybase" / "config.toml"


def read_config(path: Path | None = None) -> Config:
    """The config file's url and key; an empty config when there is no file."""
    path = path or config_path()
    try:
        with path.open("rb") as source:
            values = tomllib.load(source)
    except FileNotFoundError:
        return Config()
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from error
    url, key = values.get("url"), values.get("key")
    if not isinstance(url, str | None) or not isinstance(key, str | None):
        raise ConfigError(_("%(path)s: url and key must be strings") % {"path": path})
    return Config(url=url, key=key)


def write_config(config: Config, path: Path | None = None) -> Path:
    """Write the config file readable by its owner only (it holds an API key)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A JSON string is a TOML basic string: quotes and backslashes escaped, the rest as is.
    text = "".join(
        f"{name} = {json.dumps(value)}\n"
        for name, value in (("url", config.url), ("key", config.key))
        if value
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)
    return path


def platform_root(url: str) -> str:
    """The platform's root URL: without a trailing slash, nor a service's name at the end (the
    ``.../catalog`` that ``contracts register --url`` took before the verbs spoke to the root)."""
    root = url.rstrip("/")
    head, _slash, last = root.rpartition("/")
    return head if last in SERVICES and "://" in head else root


def segment(value: str) -> str:
    """``value`` as one path segment: a ``/``, ``?`` or ``#`` in an id cannot reach another path."""
    return quote(value, safe="")


class Refused(Exception):
    """The platform answered with a problem (RFC 9457): ``status`` and the problem document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title', '')}")
        self.status = status
        self.problem = problem

    @property
    def slug(self) -> str:
        """The last part of the problem's ``type``, e.g. ``domain-not-found``."""
        return str(self.problem.get("type", "")).rstrip("/").rpartition("/")[2]


class Unreachable(Exception):
    """No answer from the platform at all."""


class Connection:
    """One platform, one key, one language: JSON in, JSON out, a problem raised as :class:`Refused`."""

    def __init__(self, url: str, key: str | None, *, timeout: float = 30.0) -> None:
        self.url = platform_root(url)
        headers = {"Accept-Language": i18n.tag(), "User-Agent": "citybase-cli/0.1"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=TRANSPORT)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of ``method path`` (None for 204); raises :class:`Refused` or
        :class:`Unreachable`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise Unreachable(
                _("no answer from %(url)s: %(error)s") % {"url": self.url, "error": error}
            ) from error
        if response.status_code >= 400:
            raise Refused(response.status_code, problem_document(response))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, json=body if body is not None else {})

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)


def language(flag: str | None = None) -> str:
    """The locale a command speaks: ``--lang``, else ``CITYBASE_LANG``, else the POSIX locale
    (``LC_ALL``, ``LC_MESSAGES``, ``LANG``: ``zh_CN.UTF-8`` is Chinese), else English."""
    for choice in (
        flag,
        os.environ.get("CITYBASE_LANG"),
        os.environ.get("LC_ALL"),
        os.environ.get("LC_MESSAGES"),
        os.environ.get("LANG"),
    ):
        if choice:
            # POSIX names a locale's encoding and variant after the language: zh_CN.UTF-8@pinyin
            return i18n.supported(choice.split(".")[0].split("@")[0]) or i18n.DEFAULT_LOCALE
    return i18n.DEFAULT_LOCALE
