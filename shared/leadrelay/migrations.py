"""Runs a service's Alembic migrations at start-up, serialised across replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from leadrelay.db import Database, create_engine


async def migrate(db: Database, migrations: Path) -> None:
    """Create the schema if needed and run this service's Alembic migrations to head."""
    if not db.postgres:
        await _migrate(db, db.engine, migrations)
        return
    # Its own engine: a migration's statements may take longer than the requests' command timeout.
    engine = create_engine(db.url, db.schema, command_timeout=None)
    try:
        await _migrate(db, engine, migrations)
    finally:
        await engine.dispose()


async def _migrate(db: Database, engine: AsyncEngine, migrations: Path) -> None:
    from alembic import command
    from alembic.config import Config

    lock = text("SELECT pg_advisory_xact_lock(hashtext(:k))")
    if db.postgres:
        async with engine.begin() as conn:
            # Several replicas may start at once: serialise migrations on a lock.
            await conn.execute(lock, {"k": f"migrate:{db.schema}"})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))

    async with engine.begin() as conn:
        if db.postgres:
            await conn.execute(lock, {"k": f"migrate:{db.schema}"})

        def _upgrade(sync_conn: Any) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        await conn.run_sync(_upgrade)
