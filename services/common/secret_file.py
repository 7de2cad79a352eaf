"""Secrets of the one-machine platform, kept in files of the data directory.

No secret of citybase has a default in the code. A deployment (Kafka or PostgreSQL) sets each one
in the environment from its secret store, and a service refuses to start without it. On one
machine (``citybase up``, SQLite and the embedded bus) each secret is made once per data
directory: 256 random bits in ``<data dir>/secrets/<name>``, a file only its owner may read
(mode 0600), read back on every start so that what it signs survives restarts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

MIN_SECRET_CHARS = 32
"""The shortest secret accepted from the environment or a file: 32 characters (``openssl rand -hex 16``
and up); a short text is a password somebody chose, not a key."""


class MissingSecret(RuntimeError):
    """A secret is not set, or the file that holds it may not be trusted: the service cannot start."""


def check_secret(name: str, value: str) -> str:
    """``value`` if it can serve as secret ``name``; ValueError saying why not."""
    if len(value.strip()) < MIN_SECRET_CHARS:
        raise ValueError(
            f"{name} must be at least {MIN_SECRET_CHARS} characters of random text "
            "(e.g. `openssl rand -hex 32`)"
        )
    return value


def data_dir_secret(data_dir: Path, name: str) -> bytes:
    """The secret ``name`` of this data directory, made on first use (mode 0600).

    Made atomically (written to a private temporary file, then linked into place), so that two
    processes starting at once on one data directory read the same secret. A file that others
    may read or write is refused rather than trusted.
    """
    directory = data_dir / "secrets"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    if not path.exists():
        temporary = directory / f".{name}.{secrets.token_hex(8)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(secrets.token_urlsafe(32) + "\n")
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MissingSecret(
            f"{path} may be read or written by others (mode {stat.filemode(mode)}): chmod 600 it"
        )
    value = path.read_text(encoding="ascii").strip()
    try:
        check_secret(str(path), value)
    except ValueError as error:
        raise MissingSecret(str(error)) from None
    return value.encode()
