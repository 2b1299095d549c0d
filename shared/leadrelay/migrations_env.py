"""The body of every service's Alembic ``env.py``: migrate on the connection Leadrelay hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData


def run(target_metadata: MetaData) -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        # `alembic revision --autogenerate` from a shell: use LEADRELAY_DATABASE_URL or a scratch SQLite.
        import os

        from sqlalchemy import create_engine

        url = os.environ.get("LEADRELAY_MIGRATIONS_URL", "sqlite:///:memory:")
        with create_engine(url).connect() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
