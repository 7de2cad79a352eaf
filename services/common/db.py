"""Database kernel: engines, the unit of work, and per-service Alembic migrations.

Every service owns its tables (prefixed with the service name) and its own Alembic history, kept
in its own version table, so that services can share one database server without sharing a
schema. SQLite is the embedded default; PostgreSQL is what deployments and integration tests use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

AFTER_COMMIT = "citybase.after_commit"

PING_AFTER_IDLE_S = 1.0
"""A pooled connection that rested longer than this is pinged before it is handed out."""


def create_db_engine(url: str, *, connect_timeout_s: int = 5, pool_size: int = 10) -> Engine:
    """An engine with bounded waits: a stopped database yields an error, never a hang."""
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        database = sa.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=connect_timeout_s,
        connect_args={"connect_timeout": connect_timeout_s} if backend == "postgresql" else {},
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Pre-ping, but only a connection that rested in the pool: one the server may have dropped.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, a quarter of the time of
    a read by primary key. A connection checked in less than :data:`PING_AFTER_IDLE_S` ago was
    working then; should the server have gone since, the statement fails as a disconnect,
    SQLAlchemy invalidates the whole pool, and that request gets the 503 any request gets
    during an outage.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def rests_from_now(_dbapi_connection: Any, record: Any) -> None:
        record.info["citybase_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        rested = record.info.get("citybase_checked_in")
        if rested is not None and time.monotonic() - rested < PING_AFTER_IDLE_S:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and tries another (or a new one).
            raise sa.exc.DisconnectionError(f"the pooled connection is gone: {error}") from error


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while one writer commits; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's transaction has committed (never if it rolls back)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


@contextmanager
def unit_of_work(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: services flush, this commits, then runs the after-commit callbacks."""
    session = sessions()
    try:
        yield session
        session.commit()
        callbacks = session.info.pop(AFTER_COMMIT, [])
    except BaseException:
        session.rollback()
        session.info.pop(AFTER_COMMIT, None)
        raise
    finally:
        session.close()
    for callback in callbacks:
        callback()


def ping(engine: Engine) -> None:
    """Raise unless the database answers ``SELECT 1``."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


def alembic_config(url: str, script_location: Path, version_table: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    # ConfigParser interpolation would treat '%' in passwords as syntax.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["version_table"] = version_table
    return config


def migrate(url: str, script_location: Path, version_table: str, engine: Engine | None = None) -> None:
    """Bring the service's tables to the newest revision (idempotent); says so in one log line
    when it changed anything."""
    config = alembic_config(url, script_location, version_table)
    own_engine = engine is None
    engine = engine if engine is not None else create_db_engine(url)
    try:
        with engine.begin() as connection:
            before = _revision(connection, version_table)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            after = _revision(connection, version_table)
    finally:
        if own_engine:
            engine.dispose()
    if after != before:
        service = version_table.removeprefix("alembic_version_")
        log.info("%s: database schema upgraded from %s to %s", service, before or "empty", after)


def _revision(connection: sa.Connection, version_table: str) -> str | None:
    return MigrationContext.configure(
        connection, opts={"version_table": version_table}
    ).get_current_revision()


def run_migrations_env(target_metadata: sa.MetaData) -> None:
    """The body of every service's ``migrations/env.py`` (online mode, one version table per service)."""
    from alembic import context

    config = context.config
    version_table = config.attributes.get("version_table", "alembic_version")
    connection = config.attributes.get("connection")
    options = {
        "target_metadata": target_metadata,
        "version_table": version_table,
        "render_as_batch": True,  # SQLite needs batch mode for ALTER
        "compare_type": True,
    }
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_db_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **options)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
