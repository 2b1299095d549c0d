"""The inbox: ``leadrelay.inbox.claim`` writes the ids not seen yet and returns them, in the caller's
transaction, on SQLite and on real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from leadrelay.db import Database
from leadrelay.inbox import claim as claim_ids
from tests.shared.tables import Base, Inbox

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def open_database(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Database:
    schema = request.getfixturevalue("unique") + "_inbox"
    if kind == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}", schema, Base.metadata)
    else:
        database = Database(request.getfixturevalue("pg_url"), schema, Base.metadata)
        async with database.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return database


async def close_database(database: Database) -> None:
    if database.postgres:
        async with database.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{database.schema}" CASCADE'))
    await database.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(request, request.param, tmp_path)
    yield database
    await close_database(database)


@pytest.fixture
async def pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """PostgreSQL only: on SQLite one connection per service serialises the writers anyway."""
    database = await open_database(request, "postgres", tmp_path)
    yield database
    await close_database(database)


async def claim(db: Database, *ids: str) -> set[str]:
    async with db.transaction() as session:
        return await claim_ids(session, Inbox.__table__, [(i, "leads.intake") for i in ids], NOW)


async def stored(db: Database) -> list[tuple[str, str]]:
    async with db.transaction() as session:
        rows = await session.execute(select(Inbox.event_id, Inbox.topic).order_by(Inbox.event_id))
        return [(r.event_id, r.topic) for r in rows]


async def test_new_ids_are_claimed_once_and_then_known(db: Database) -> None:
    assert await claim(db) == set()
    assert await claim(db, "a", "b", "a") == {"a", "b"}  # the same id twice in one batch: once
    assert await claim(db, "b", "c") == {"c"}
    assert await claim(db, "a", "b", "c") == set()
    assert await stored(db) == [("a", "leads.intake"), ("b", "leads.intake"), ("c", "leads.intake")]


async def test_the_first_topic_of_an_id_is_kept(db: Database) -> None:
    async with db.transaction() as session:
        assert await claim_ids(session, Inbox.__table__, [("x", "leads.scored"), ("x", "leads.intake")], NOW) == {"x"}
    assert await stored(db) == [("x", "leads.scored")]


async def test_a_rolled_back_claim_leaves_the_ids_free(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            assert await claim_ids(session, Inbox.__table__, [("r", "leads.intake")], NOW) == {"r"}
            raise RuntimeError("the handler failed")
    assert await claim(db, "r") == {"r"}


async def test_a_concurrent_claim_waits_for_the_first_and_then_finds_the_id_taken(pg_db: Database) -> None:
    db = pg_db
    async with db.transaction() as first:
        assert await claim_ids(first, Inbox.__table__, [("k", "leads.intake"), ("m", "leads.intake")], NOW) == {
            "k",
            "m",
        }
        second = asyncio.create_task(claim(db, "m", "n"))
        await asyncio.sleep(0.3)
        assert not second.done(), "the second claim should wait for the first transaction"
    assert await asyncio.wait_for(second, 10) == {"n"}
