"""How a citybase process logs: one format, and the libraries' start-up chatter kept out.

A new user's first screen is the server log of ``make run``. Alembic announces every revision of
every service, and Great Expectations logs two hundred "Skipping registering function" lines at
INFO when it is first imported; neither says anything an operator acts on. They log at WARNING and
above; citybase itself says, per service, one line when its schema is current and one when the
service is ready.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

QUIET_LIBRARIES = ("alembic", "great_expectations", "kafka")
"""Loggers held at WARNING whatever the process's level: their INFO lines are start-up noise."""


def configure(level: str | int = "INFO") -> None:
    """Set up the root logger once per process (the entry points call it; tests do not)."""
    logging.basicConfig(level=level, format=FORMAT)
    root_level = logging.getLogger().getEffectiveLevel()
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root_level))
