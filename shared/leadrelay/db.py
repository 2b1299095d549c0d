"""A service's database: engine, sessions and column types.

One schema per service: on PostgreSQL each service's connections run with
``search_path`` set to its own schema, so models and migrations carry no schema
name; embedded mode gives each service its own SQLite file. The inbox, the
outbox, the unit of work and migrations have modules of their own
(``leadrelay.inbox``, ``leadrelay.outbox``, ``leadrelay.unit_of_work``,
``leadrelay.migrations``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    TypeDecorator,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from leadrelay.unavailable import Unavailable

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = JSON().with_variant(JSONB(), "postgresql")

# BIGINT autoincrement does not work on SQLite; INTEGER PRIMARY KEY does.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def service_metadata() -> MetaData:
    """Each service's own MetaData (its own schema), with the naming convention migrations rely on."""
    return MetaData(naming_convention=NAMING)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def service_url(database_url: str | None, data_dir: Path, service: str) -> str:
    if database_url:
        return database_url
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / (schema_name(service) + ".db")
    return f"sqlite+aiosqlite:///{path.as_posix()}"


def schema_name(service: str, prefix: str = "") -> str:
    return prefix + service.replace("-", "_")


# SQLSTATEs that mean the server cannot be used now: connection exceptions (08...), out of
# resources (53...: too many connections), the server shutting down or starting up (57P01-57P03).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P0")
# Defaults of the settings ``db_connect_timeout_seconds`` and ``db_command_timeout_seconds``.
CONNECT_TIMEOUT = 3.0
COMMAND_TIMEOUT = 5.0


def dependency_name(url: str) -> str:
    """How the API names the database in a 503: ``postgresql`` or ``sqlite``."""
    return "postgresql" if is_postgres(url) else "sqlite"


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached now (not that the statement is wrong)."""
    if isinstance(exc, Unavailable | PoolTimeout | ConnectionError | TimeoutError | OSError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
    if sqlstate is None:
        sqlstate = getattr(getattr(getattr(exc, "orig", None), "__cause__", None), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def create_engine(
    url: str,
    schema: str,
    connect_timeout: float | None = CONNECT_TIMEOUT,
    command_timeout: float | None = COMMAND_TIMEOUT,
) -> AsyncEngine:
    """The engine of a service's database. On PostgreSQL, connecting is bounded by ``connect_timeout``
    (so is waiting for a pooled connection) and each statement by ``command_timeout``; a refused,
    timed-out or lost connection raises :class:`leadrelay.unavailable.Unavailable`, so a request
    fails within seconds with a 503 instead of hanging or answering 500."""
    if is_postgres(url):
        import asyncpg

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        settings = {"search_path": schema, "application_name": f"leadrelay-{schema}"}

        async def connect() -> Any:
            try:
                return await asyncpg.connect(
                    dsn, timeout=connect_timeout, command_timeout=command_timeout, server_settings=settings
                )
            except Exception as exc:
                if unreachable(exc) or isinstance(exc, asyncpg.PostgresConnectionError):
                    raise Unavailable("postgresql", f"the database cannot be reached: {exc!r}") from exc
                raise

        engine = create_async_engine(
            url,
            async_creator=connect,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            pool_timeout=connect_timeout if connect_timeout is not None else 30,
        )

        @event.listens_for(engine.sync_engine, "handle_error")
        def _unavailable(context: ExceptionContext) -> BaseException | None:
            exc = context.sqlalchemy_exception or context.original_exception
            if context.is_disconnect or unreachable(exc):
                return Unavailable("postgresql", f"the database cannot be used now: {context.original_exception!r}")
            return None

        return engine
    # SQLite: one connection per service file serialises writers, which avoids "database is
    # locked" surprises; WAL lets the API read while the consumer writes.
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60, connect_args={"timeout": 60})

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


class Database:
    """A service's engine and the transaction helpers every entrypoint uses."""

    def __init__(
        self,
        url: str,
        schema: str,
        metadata: MetaData,
        connect_timeout: float | None = CONNECT_TIMEOUT,
        command_timeout: float | None = COMMAND_TIMEOUT,
    ) -> None:
        self.url = url
        self.schema = schema
        self.metadata = metadata
        self.dependency = dependency_name(url)
        self.engine = create_engine(url, schema, connect_timeout, command_timeout)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.postgres = is_postgres(url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A committed transaction: for the shared library's own machinery (the unit of work, the
        outbox relay, migrations); a service writes through ``ctx.unit_of_work()`` and reads through
        :meth:`read`."""
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except PoolTimeout as exc:
            # Every pooled connection busy past the pool's timeout (while the server restarts, say):
            # raised at checkout, past the engine's handle_error hook.
            raise Unavailable(self.dependency, f"no free database connection: {exc!r}") from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads: whatever it did is rolled back at the end. Writes go through a unit
        of work (``leadrelay.unit_of_work``), which commits and wakes the senders."""
        try:
            async with self.sessions() as session:
                try:
                    yield session
                finally:
                    # Detached first, so the rows read stay loaded (a rollback would expire them).
                    session.expunge_all()
                    await session.rollback()
        except PoolTimeout as exc:
            raise Unavailable(self.dependency, f"no free database connection: {exc!r}") from exc

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
