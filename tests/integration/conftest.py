"""The integration suite runs on both databases: SQLite (embedded) and real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadrelay.settings import Settings
from tests.harness import settings_for


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return settings_for(tmp_path)
    url = request.getfixturevalue("pg_url")
    prefix = request.getfixturevalue("pg_schema_cleanup")
    return settings_for(tmp_path, database_url=url, schema_prefix=prefix)
