"""Upgrading a database that already holds data, on SQLite and on PostgreSQL: the SLA monitor's queue
migration fills in the leads assigned before it existed, and the one projection of an assignment
keeps what the handoffs table held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select, text

from leadrelay.auth import Principal
from leadrelay.db import Database, UtcDateTime, schema_name, service_url
from leadrelay.settings import Settings
from sla_monitor import main as sla_main
from sla_monitor.models import Base, QueuedLead, SlaClock
from sla_monitor.queue import repository
from sla_monitor.queue.domain import item

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


def sla_database(settings: Settings) -> Database:
    return Database(
        service_url(settings.database_url, settings.data_dir, "sla-monitor"),
        schema_name("sla-monitor", settings.schema_prefix),
        Base.metadata,
    )


async def test_the_queue_is_filled_in_from_the_clocks(settings: Settings) -> None:
    db = sla_database(settings)
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
            items = [item(r, now) for r in await repository.open_queue(session, ops, now, None, None, None, 10)]
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
                for i in [item(r, now) for r in await repository.open_queue(session, mikko, now, None, None, None, 10)]
            ] == ["lead-4"]
    finally:
        await db.dispose()


def table(name: str, example: dict[str, Any]) -> sa.TableClause:
    """A table of the revision 0003 as the test writes it (the models no longer map the handoffs)."""

    def kind(column: str, value: Any) -> Any:
        if isinstance(value, dict):
            return sa.JSON()
        if column.endswith(("_at", "_due")):
            return UtcDateTime(timezone=True)
        return None

    return sa.table(name, *(sa.column(c, kind(c, v)) for c, v in example.items()))


def handoff(lead: str, cycle: int, rep: str = "astrid.lindqvist", **contact: Any) -> dict[str, Any]:
    return {
        "lead_id": lead,
        "cycle": cycle,
        "rep_id": rep,
        "territory": "nordics",
        "qualification": "handraiser",
        "score": 70 + cycle,
        "contact": {"email": f"{lead}@example.com", "first_name": None, **contact},
        "assigned_at": T0 + timedelta(days=cycle),
    }


def queued(lead: str, cycle: int, rep: str = "astrid.lindqvist", **extra: Any) -> dict[str, Any]:
    started = T0 + timedelta(days=cycle)
    return {
        "lead_id": lead,
        "cycle": cycle,
        "rep_id": rep,
        "territory": "nordics",
        "qualification": extra.get("qualification", "handraiser"),
        "assigned_at": started,
        "first_touch_due": started + timedelta(hours=1),
        "disposition_due": started + timedelta(days=2),
        "handoff": {"contact": {"email": f"{lead}@example.com"}, "score": 70 + cycle},
        "touches": extra.get("touches", 0),
        "first_touch_at": None,
        "last_touch_at": None,
        "disposition": extra.get("disposition"),
        "disposition_at": None,
        "open": extra.get("open", True),
    }


async def test_the_handoffs_move_into_the_queue_rows(settings: Settings) -> None:
    """From 0003, a database with rows in both tables: every lead keeps its queue row and what its
    handoff row said (score, contact, qualification), and the handoffs table is gone."""
    db = sla_database(settings)
    try:
        await upgrade(db, "0003")
        queue_table = table("queue", queued("x", 1))
        handoffs_table = table("handoffs", handoff("x", 1))
        clocks_table = table("clocks", clock("x", 1, "first_touch", "running"))
        async with db.transaction() as session:
            await session.execute(
                insert(queue_table),
                [
                    queued("lead-1", 1, touches=2),  # the usual: both rows of the same cycle
                    queued("lead-2", 1, disposition="recycle", open=False),  # handed back: closed, kept
                    queued("lead-3", 1, qualification=None),  # a row from 0002's backfill, then a handoff
                    queued("lead-4", 3, rep="mikko.virtanen"),  # newer than its (stale) handoff
                    queued("lead-5", 1),  # assigned before the handoffs existed: none
                ],
            )
            await session.execute(
                insert(handoffs_table),
                [
                    handoff("lead-1", 1, first_name="Anna"),
                    handoff("lead-2", 1),
                    handoff("lead-3", 1),
                    handoff("lead-4", 2),
                    handoff("lead-6", 2, rep="mikko.virtanen"),  # no queue row at all
                ],
            )
            await session.execute(
                insert(clocks_table),
                [clock("lead-6", 2, "first_touch", "met"), clock("lead-6", 2, "disposition", "running")],
            )
        await upgrade(db, "head")

        async with db.transaction() as session:
            got = {q.lead_id: q for q in (await session.execute(select(QueuedLead))).scalars()}
            tables = await session.run_sync(lambda s: sa.inspect(s.connection()).get_table_names())
        assert "handoffs" not in tables
        assert set(got) == {"lead-1", "lead-2", "lead-3", "lead-4", "lead-5", "lead-6"}
        one = got["lead-1"]
        assert (one.cycle, one.score, one.qualification, one.touches) == (1, 71, "handraiser", 2)
        assert one.contact == {"email": "lead-1@example.com", "first_name": "Anna"}
        assert one.handoff == {"contact": {"email": "lead-1@example.com"}, "score": 71}
        two = got["lead-2"]
        assert (two.contact, two.disposition, two.open) == (
            {"email": "lead-2@example.com", "first_name": None},
            "recycle",
            False,
        )
        three = got["lead-3"]
        assert (three.qualification, three.score) == ("handraiser", 71)
        four = got["lead-4"]  # the queue's newer cycle stays; the stale handoff is not the lead's
        assert (four.cycle, four.rep_id, four.contact, four.score) == (3, "mikko.virtanen", None, None)
        five = got["lead-5"]
        assert (five.contact, five.score, five.handoff) == (
            None,
            None,
            {"contact": {"email": "lead-5@example.com"}, "score": 71},
        )
        six = got["lead-6"]
        assert (six.cycle, six.rep_id, six.qualification, six.score) == (2, "mikko.virtanen", "handraiser", 72)
        assert six.contact == {"email": "lead-6@example.com", "first_name": None}
        assert (six.first_touch_due, six.disposition_due) == (T0 + timedelta(days=2, hours=1), T0 + timedelta(days=4))
        assert six.open and six.handoff is None
    finally:
        await db.dispose()
