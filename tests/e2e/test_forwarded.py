"""Who the client is, on a real server (`leadrelay run`, uvicorn): X-Forwarded-For is believed
only from the proxies named in LEADRELAY_TRUSTED_PROXIES, so a local process cannot pick an
address for every post and slip past the per-address form limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.distributed import free_port
from tests.harness import EXAMPLE

pytestmark = pytest.mark.slow

FORM = "/v1/forms/demo-request/submissions"
BURST = 5


def _start(tmp: Path, **extra: str) -> tuple[str, subprocess.Popen[bytes], Path]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADRELAY_")}
    env.update(
        LEADRELAY_DATA_DIR=str(tmp / "data"),
        LEADRELAY_CONFIG=str(EXAMPLE),
        LEADRELAY_FORM_BURST_PER_ADDRESS=str(BURST),
        LEADRELAY_FORM_RATE_PER_ADDRESS="0.01",
        **extra,
    )
    log = tmp / "run.log"
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "leadrelay.cli", "run", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return url, proc, log
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def go(name: str, **extra: str) -> str:
        (tmp_path / name).mkdir()
        url, proc, _ = _start(tmp_path / name, **extra)
        procs.append(proc)
        return url

    yield go
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _post_as(url: str, n: int) -> list[int]:
    """n posts from this host, each claiming another client address."""
    codes = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(n):
            r = client.post(
                FORM,
                json={"email": f"visitor{i}@forwarded-test.se"},
                headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
            )
            codes.append(r.status_code)
    return codes


def test_a_forwarded_address_is_not_believed_from_an_unnamed_peer(start) -> None:  # type: ignore[no-untyped-def]
    codes = _post_as(start("default"), BURST + 3)
    # Every post counts against this host's own address: the burst, then 429.
    assert codes == [202] * BURST + [429] * 3, codes


def test_a_named_proxy_is_believed(start) -> None:  # type: ignore[no-untyped-def]
    codes = _post_as(start("proxied", LEADRELAY_TRUSTED_PROXIES="127.0.0.1"), BURST + 3)
    # Behind a proxy each visitor has their own bucket.
    assert codes == [202] * (BURST + 3), codes
