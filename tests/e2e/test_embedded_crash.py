"""Embedded mode loses nothing either: SIGKILL `leadrelay run` mid-stream, restart it, and every
lead that got a 202 is assigned exactly once (the embedded log and offsets are on disk)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.distributed import free_port
from tests.harness import EXAMPLE, SIGNING_KEY, bearer, token_for

pytestmark = pytest.mark.slow


def start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADRELAY_")}
    env.update(LEADRELAY_DATA_DIR=str(data_dir), LEADRELAY_CONFIG=str(EXAMPLE), LEADRELAY_AUTH_SIGNING_KEY=SIGNING_KEY)
    # Hundreds of forms from one address: past intake's per-address rate limit otherwise (429).
    env.update(LEADRELAY_FORM_BURST_PER_ADDRESS="1000000", LEADRELAY_FORM_BURST_PER_SOURCE="1000000")
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "leadrelay.cli", "run", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def test_sigkill_of_the_embedded_process_loses_no_acknowledged_lead(tmp_path: Path) -> None:
    port = free_port()
    data, log = tmp_path / "data", tmp_path / "run.log"
    proc = start(data, port, log)
    accepted: list[str] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for i in range(150):
            r = client.post(
                "/v1/forms/demo-request/submissions", json={"email": f"lead{i}@kill-test.example", "country": "SE"}
            )
            assert r.status_code == 202
            accepted.append(r.json()["lead_id"])
    proc.send_signal(signal.SIGKILL)  # right after the last 202: the pipeline is still busy
    proc.wait()
    with sqlite3.connect(data / "routing.db") as db:
        done_before_kill = db.execute("SELECT count(*) FROM assignments").fetchone()[0]
    print(f"assigned before the kill: {done_before_kill} of {len(accepted)}")

    proc = start(data, port, log)
    try:
        deadline = time.monotonic() + 60
        ops = bearer(token_for("ops.desk"))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=ops) as client:
            for lead in accepted:
                while client.get(f"/v1/leads/{lead}/assignment").status_code != 200:
                    assert time.monotonic() < deadline, f"{lead} was lost"
                    time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    with sqlite3.connect(data / "routing.db") as db:
        counts = Counter(lead for (lead,) in db.execute("SELECT lead_id FROM assignments"))
    assert set(counts) == set(accepted)
    assert set(counts.values()) == {1}, "a lead was assigned twice"
