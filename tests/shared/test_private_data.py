"""The embedded data folder holds every lead's personal data and the keys: its owner's only."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadrelay import cli
from leadrelay.db import private_data_dir
from leadrelay.settings import Settings
from tests.harness import EXAMPLE


@pytest.fixture(autouse=True)
def restore_umask() -> Iterator[None]:
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_open_data_folder_is_closed_and_what_is_created_later_too(tmp_path: Path) -> None:
    os.umask(0o022)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "intake.db").write_text("")
    (data / "sub" / "old.db").write_text("")
    assert _mode(data / "intake.db") == 0o644 and _mode(data) == 0o755

    private_data_dir(data)

    assert _mode(data) == 0o700
    assert _mode(data / "sub") == 0o700
    assert _mode(data / "intake.db") == 0o600
    assert _mode(data / "sub" / "old.db") == 0o600
    # A file SQLite creates from now on (a new service's database, its write-ahead log) is 0600.
    conn = sqlite3.connect(data / "routing.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    created = [p for p in data.iterdir() if p.name.startswith("routing.db")]
    assert len(created) >= 2, created  # the database and its -wal file
    assert {p.name: _mode(p) for p in created} == {p.name: 0o600 for p in created}
    conn.close()


def test_leadrelay_run_keeps_its_data_folder_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    os.umask(0o022)
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    monkeypatch.setenv("LEADRELAY_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("LEADRELAY_DATA_DIR", str(data))
    app = cli.build_embedded_app(Settings())
    try:
        assert _mode(data) == 0o700
        files = [p for p in data.rglob("*") if p.is_file()]
        assert any(p.name == "bus.db" for p in files), files
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        asyncio.run(app.state.runtime.bus.stop())
