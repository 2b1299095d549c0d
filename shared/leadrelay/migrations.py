"""Runs a service's Alembic migrations at start-up, serialised across replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from leadrelay.db import Database


async def migrate(db: Database, migrations: Path) -> None:
    """Create the schema if needed and run this service's Alembic migrations to head."""
    from alembic import command
    from alembic.config import Config

    lock = text("SELECT pg_advisory_xact_lock(hashtext(:k))")
    if db.postgres:
        async with db.engine.begin() as conn:
            # Several replicas may start at once: serialise migrations on a lock.
            await conn.execute(lock, {"k": f"migrate:{db.schema}"})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))

    async with db.engine.begin() as conn:
        if db.postgres:
            await conn.execute(lock, {"k": f"migrate:{db.schema}"})

        def _upgrade(sync_conn: Any) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        await conn.run_sync(_upgrade)
