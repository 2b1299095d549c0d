"""The limits on a real server (`leadrelay run`, uvicorn): oversize bodies, deep JSON and huge headers
are refused without being read, and the server's memory stays flat.

Each test asserts on the answer and prints the server's resident memory before and after.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.distributed import free_port
from tests.harness import EXAMPLE

pytestmark = pytest.mark.slow

FORM = "/v1/forms/demo-request/submissions"
MB = 1024 * 1024


@dataclass
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def rss_mb(self) -> float:
        return float(psutil.Process(self.proc.pid).memory_info().rss) / MB

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("limits")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADRELAY_")}
    env.update(LEADRELAY_DATA_DIR=str(tmp / "data"), LEADRELAY_CONFIG=str(EXAMPLE))
    log = tmp / "run.log"
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
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    try:
        yield Server(port, proc, log)
    finally:
        proc.terminate()
        proc.wait(30)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and everything the server sent until it closed the connection."""
    data = b""
    sock.settimeout(10)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1]), data


def stream_until_answered(sock: socket.socket, first: bytes, chunk: bytes, budget: int) -> int:
    """Send ``first``, then ``chunk`` after ``chunk`` until the server answers (or ``budget`` bytes
    went out); returns how many bytes were sent."""
    sock.sendall(first)
    sent = len(first)
    while sent < budget:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    return sent


def report(server: Server, what: str, before: float, sent: int | None = None) -> None:
    after = server.rss_mb()
    extra = f", client sent {sent / MB:.1f} MB" if sent is not None else ""
    print(f"{what}: server RSS {before:.1f} MB before, {after:.1f} MB after{extra}")


def test_a_300_mb_content_length_is_413_before_the_body_is_read(server: Server) -> None:
    before = server.rss_mb()
    with server.connect() as sock:
        sent = stream_until_answered(
            sock,
            head("POST", FORM, {"content-type": "application/json", "content-length": str(300 * MB)}),
            b"x" * 65536,
            300 * MB,
        )
        status, data = read_response(sock)
    assert status == 413, data[:500]
    assert b"request body larger than 65536 bytes" in data
    assert sent < 20 * MB  # the server answered at once: the client stopped long before 300 MB
    report(server, "300 MB Content-Length", before, sent)


def test_a_300_mb_chunked_body_is_413_once_it_passes_the_limit(server: Server) -> None:
    before = server.rss_mb()
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"  # 64 KB chunks
    with server.connect() as sock:
        sent = stream_until_answered(
            sock,
            head("POST", FORM, {"content-type": "application/json", "transfer-encoding": "chunked"}),
            chunk,
            300 * MB,
        )
        status, data = read_response(sock)
    assert status == 413, data[:500]
    assert sent < 20 * MB
    report(server, "300 MB chunked", before, sent)


def test_several_oversize_posts_at_once_are_all_413(server: Server) -> None:
    before = server.rss_mb()

    def one(_: int) -> tuple[int, int]:
        with server.connect() as sock:
            sent = stream_until_answered(
                sock,
                head("POST", "/v1/events", {"content-type": "application/json", "transfer-encoding": "chunked"}),
                b"10000\r\n" + b"[" * 0x10000 + b"\r\n",
                300 * MB,
            )
            return read_response(sock)[0], sent

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert [status for status, _ in results] == [413] * 8
    report(server, "8 concurrent 300 MB posts", before, sum(sent for _, sent in results))
    assert httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=5).status_code == 200


@pytest.mark.parametrize("path", [FORM, "/v1/events", "/v1/leads/0b3f3c64-5d7e-5c4e-8a55-3b7f2c9d0a11/touches"])
def test_deep_json_is_refused_never_a_500(server: Server, path: str) -> None:
    before = server.rss_mb()
    url = f"http://127.0.0.1:{server.port}{path}"
    json_type = {"content-type": "application/json"}
    r = httpx.post(url, content=b"[" * 100_000 + b"]" * 100_000, headers=json_type, timeout=10)
    assert r.status_code == 413, r.text  # 200 KB: refused on its size first
    r = httpx.post(url, content=b'{"a":' * 10_000 + b"1" + b"}" * 10_000, headers=json_type, timeout=10)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["type"] == "json_too_deep"
    report(server, f"deep JSON on {path}", before)


def test_headers_over_the_limit_are_431_while_they_arrive(server: Server) -> None:
    before = server.rss_mb()
    with server.connect() as sock:
        # 50 MB of headers offered: the server answers once the first 16 KB have arrived.
        sent = stream_until_answered(
            sock, b"GET /livez HTTP/1.1\r\nhost: x\r\n", b"x-pad: " + b"a" * 8000 + b"\r\n", 50 * MB
        )
        status, data = read_response(sock)
    assert status == 431, data[:300]
    assert b"headers larger than 16384 bytes" in data
    assert sent < 10 * MB
    report(server, "50 MB of headers", before, sent)
    # One header line of 1 MB, never finished: the same.
    with server.connect() as sock:
        sent = stream_until_answered(sock, b"GET /livez HTTP/1.1\r\nx-long: ", b"b" * 65536, 50 * MB)
        status, _ = read_response(sock)
    assert status == 431
    # Just under the limit is fine, and keep-alive requests each get the full allowance.
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
        for _ in range(3):
            assert client.get("/livez", headers={"x-pad": "a" * 15_000}).status_code == 200
    report(server, "1 MB header line", before, sent)
