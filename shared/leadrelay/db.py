"""Database access shared by every service.

One schema per service: on PostgreSQL each service's connections run with
``search_path`` set to its own schema, so models and migrations carry no schema
name; embedded mode gives each service its own SQLite file. Every service's
metadata holds an ``inbox`` (processed event ids) and an ``outbox`` (events to
relay), written in the same transaction as the state they belong to.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
    String,
    Text,
    TypeDecorator,
    delete,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

from leadrelay.events import Envelope, Record

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


class InboxMixin:
    """Processed event ids: a redelivered event finds its id here and changes nothing."""

    __tablename__ = "inbox"
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OutboxMixin:
    """Events written with the state they follow from, relayed to the bus after the commit."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    headers: Mapped[str] = mapped_column(Text())
    value: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


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


def create_engine(url: str, schema: str) -> AsyncEngine:
    if is_postgres(url):
        return create_async_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            connect_args={"server_settings": {"search_path": schema, "application_name": f"leadrelay-{schema}"}},
        )
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


@dataclass
class UnitOfWork:
    """One transaction: the session for state, plus the events to write to the outbox with it."""

    session: AsyncSession
    now: datetime
    metadata: MetaData
    emitted: list[Envelope] = field(default_factory=list)
    # What a consumer's prefetch loaded for the whole batch (rows by lead id...), so that
    # handling one event costs no query of its own.
    batch: dict[str, Any] = field(default_factory=dict)
    # Outbox rows written by this unit of work: the relay needs waking only if there are any.
    flushed: int = 0

    def emit(self, envelope: Envelope) -> None:
        self.emitted.append(envelope)

    async def flush_outbox(self) -> None:
        if not self.emitted:
            return
        outbox = self.metadata.tables["outbox"]
        rows = []
        for env in self.emitted:
            rec = env.to_record()
            rows.append(
                {
                    "event_id": env.id,
                    "topic": rec.topic,
                    "key": env.subject,
                    "headers": json.dumps([[k, v.decode()] for k, v in rec.headers]),
                    "value": rec.value.decode(),
                    "created_at": self.now,
                }
            )
        await self.session.execute(insert(outbox), rows)
        self.flushed += len(rows)
        self.emitted.clear()


class Database:
    """A service's engine and the transaction helpers every entrypoint uses."""

    def __init__(self, url: str, schema: str, metadata: MetaData) -> None:
        self.url = url
        self.schema = schema
        self.metadata = metadata
        for table in ("inbox", "outbox"):
            if table not in metadata.tables:
                raise ValueError(f"{schema}: its models need an {table} table (InboxMixin, OutboxMixin)")
        self.inbox = metadata.tables["inbox"]
        self.outbox = metadata.tables["outbox"]
        self.engine = create_engine(url, schema)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.postgres = is_postgres(url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def unit_of_work(self, now: datetime) -> AsyncIterator[UnitOfWork]:
        """Commit state, inbox and outbox rows together, or nothing."""
        async with self.transaction() as session:
            uow = UnitOfWork(session=session, now=now, metadata=self.metadata)
            yield uow
            await uow.flush_outbox()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()

    # ---- inbox

    async def claim(self, session: AsyncSession, records: list[tuple[str, str]], now: datetime) -> set[str]:
        """Write the inbox rows of ``records`` (event id, topic) that are not there yet, in the
        caller's transaction, and return the ids that were new: the events to handle. One round
        trip instead of a lookup and an insert; a concurrent consumer claiming the same id waits
        for the other's commit and then finds it taken."""
        unique: dict[str, str] = {}
        for event_id, topic in records:
            unique.setdefault(event_id, topic)
        if not unique:
            return set()
        insert_ = pg_insert if self.postgres else sqlite_insert
        stmt = (
            insert_(self.inbox)
            # In id order, so that two transactions claiming overlapping ids lock them in one order.
            .values([{"event_id": eid, "topic": unique[eid], "processed_at": now} for eid in sorted(unique)])
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(self.inbox.c.event_id)
        )
        return set((await session.execute(stmt)).scalars())

    # ---- outbox (read by the relay)

    async def take_outbox(self, session: AsyncSession, limit: int) -> tuple[list[int], list[Record]]:
        outbox = self.outbox
        result = await session.execute(select(outbox).order_by(outbox.c.id).limit(limit))
        ids: list[int] = []
        records: list[Record] = []
        for row in result:
            ids.append(row.id)
            records.append(
                Record(
                    topic=row.topic,
                    key=row.key.encode(),
                    value=row.value.encode(),
                    headers=tuple((k, v.encode()) for k, v in json.loads(row.headers)),
                )
            )
        return ids, records

    async def delete_outbox(self, session: AsyncSession, ids: list[int]) -> None:
        await session.execute(delete(self.outbox).where(self.outbox.c.id.in_(ids)))

    async def outbox_lock(self, session: AsyncSession) -> bool:
        """One relay per service schema at a time, so events leave in the order they were written."""
        if not self.postgres:
            return True
        result = await session.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": f"outbox:{self.schema}"}
        )
        return bool(result.scalar())

    # ---- migrations

    async def migrate(self, migrations: Path) -> None:
        """Create the schema if needed and run this service's Alembic migrations to head."""
        from alembic import command
        from alembic.config import Config

        if self.postgres:
            async with self.engine.begin() as conn:
                # Several replicas may start at once: serialise migrations on a lock.
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"migrate:{self.schema}"})
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        cfg = Config()
        cfg.set_main_option("script_location", str(migrations))

        async with self.engine.begin() as conn:
            if self.postgres:
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"migrate:{self.schema}"})

            def _upgrade(sync_conn: Any) -> None:
                cfg.attributes["connection"] = sync_conn
                command.upgrade(cfg, "head")

            await conn.run_sync(_upgrade)
