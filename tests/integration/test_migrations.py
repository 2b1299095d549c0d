"""Upgrading a database that already holds data: the SLA monitor's queue migration fills in the
leads assigned before it existed, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select, text

from leadrelay.auth import Principal
from leadrelay.db import Database, schema_name, service_url
from leadrelay.settings import Settings
from sla_monitor import main as sla_main
from sla_monitor import queue, repository
from sla_monitor.models import Base, QueuedLead, SlaClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def upgrade(db: Database, revision: str) -> None:
    migrations = sla_main.SERVICE.migrations
    assert migrations is not None
    if db.postgres:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    async with db.engine.begin() as conn:

        def run(sync_conn: Any) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        await conn.run_sync(run)


def clock(lead: str, cycle: int, name: str, status: str, rep: str = "astrid.lindqvist", **extra: Any) -> dict[str, Any]:
    started = T0 + timedelta(days=cycle)
    due = started + (timedelta(hours=1) if name == "first_touch" else timedelta(days=2))
    return {
        "lead_id": lead,
        "cycle": cycle,
        "name": name,
        "rep_id": rep,
        "territory": "nordics",
        "started_at": started,
        "due_at": due,
        "status": status,
        "stopped_at": extra.get("stopped_at"),
    }


async def test_the_queue_is_filled_in_from_the_clocks(settings: Settings) -> None:
    db = Database(
        service_url(settings.database_url, settings.data_dir, "sla-monitor"),
        schema_name("sla-monitor", settings.schema_prefix),
        Base.metadata,
    )
    try:
        await upgrade(db, "0001")
        touched = T0 + timedelta(days=1, minutes=20)
        rows = [
            clock("lead-1", 1, "first_touch", "running"),
            clock("lead-1", 1, "disposition", "running"),
            clock("lead-2", 1, "first_touch", "met", stopped_at=touched),
            clock("lead-2", 1, "disposition", "running"),
            clock("lead-3", 1, "first_touch", "met", stopped_at=touched),
            clock("lead-3", 1, "disposition", "met", stopped_at=touched),  # answered: out
            clock("lead-4", 1, "first_touch", "met", stopped_at=touched),
            clock("lead-4", 1, "disposition", "met", stopped_at=touched),
            clock("lead-4", 2, "first_touch", "breached", rep="mikko.virtanen"),  # a second cycle
            clock("lead-4", 2, "disposition", "running", rep="mikko.virtanen"),
        ]
        async with db.transaction() as session:
            await session.execute(insert(SlaClock.__table__), rows)  # type: ignore[arg-type]
        await upgrade(db, "head")

        async with db.transaction() as session:
            got = {q.lead_id: q for q in (await session.execute(select(QueuedLead))).scalars()}
            assert set(got) == {"lead-1", "lead-2", "lead-4"}
            assert (got["lead-1"].touches, got["lead-1"].first_touch_at, got["lead-1"].open) == (0, None, True)
            assert (got["lead-2"].touches, got["lead-2"].first_touch_at) == (1, touched)
            four = got["lead-4"]
            assert (four.cycle, four.rep_id, four.assigned_at) == (2, "mikko.virtanen", T0 + timedelta(days=2))
            assert four.first_touch_due == T0 + timedelta(days=2, hours=1)
            assert four.handoff is None and four.qualification is None

            ops = Principal(kind="person", id="ops.desk", role="ops", name="Ops")
            now = T0 + timedelta(days=2, hours=3)
            items = [queue.item(r, now) for r in await repository.open_queue(session, ops, now, None, None, None, 10)]
            # lead-1's first touch (day 1, 10:00) is the most overdue; then lead-4's (day 2, 10:00);
            # lead-2 was touched: its next deadline is the disposition (day 3, 09:00).
            assert [(i["lead_id"], i["next_deadline"]["name"], i["next_deadline"]["status"]) for i in items] == [
                ("lead-1", "first_touch", "breached"),
                ("lead-4", "first_touch", "breached"),
                ("lead-2", "disposition", "running"),
            ]
            mikko = Principal(
                kind="person", id="mikko.virtanen", role="rep", name="Mikko", territories=frozenset({"nordics"})
            )
            assert [
                i["lead_id"]
                for i in [
                    queue.item(r, now) for r in await repository.open_queue(session, mikko, now, None, None, None, 10)
                ]
            ] == ["lead-4"]
    finally:
        await db.dispose()
