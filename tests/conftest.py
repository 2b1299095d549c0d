"""Fixtures shared by the whole suite: real PostgreSQL and Kafka, isolated per test.

`make test` starts both and sets LEADRELAY_TEST_DATABASE_URL and LEADRELAY_TEST_KAFKA
with LEADRELAY_REQUIRE_INFRA=1, so a missing server fails the run instead of skipping.
Run plain `pytest` without them and the tests that need them are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

REQUIRE = os.environ.get("LEADRELAY_REQUIRE_INFRA") == "1"
# The suite posts hundreds of forms from one address (127.0.0.1): intake's per-address rate limit
# would answer 429. The tests of the limits themselves (tests/intake/test_formats.py) set theirs.
# Settings read the environment, and the servers the tests start inherit it.
os.environ.setdefault("LEADRELAY_FORM_BURST_PER_ADDRESS", "1000000")
os.environ.setdefault("LEADRELAY_FORM_BURST_PER_SOURCE", "1000000")


def _need(var: str, what: str) -> str:
    value = os.environ.get(var)
    if not value:
        if REQUIRE:
            pytest.fail(f"{var} is not set: {what} is required (run `make test`)")
        pytest.skip(f"{var} not set: no {what} (run `make test`)")
    return value


@pytest.fixture(scope="session")
def pg_url() -> str:
    return _need("LEADRELAY_TEST_DATABASE_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return _need("LEADRELAY_TEST_KAFKA", "Kafka")


@pytest.fixture
def unique() -> str:
    """A short unique token for schema, topic and group prefixes."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
async def pg_schema_cleanup(pg_url: str, unique: str) -> AsyncIterator[str]:
    """Yields a schema prefix; drops every schema created with it afterwards."""
    prefix = f"{unique}_"
    yield prefix
    import asyncpg

    dsn = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", prefix + "%")
        for r in rows:
            await conn.execute(f'DROP SCHEMA "{r["nspname"]}" CASCADE')
    finally:
        await conn.close()
