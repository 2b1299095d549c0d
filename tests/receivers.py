"""Real servers on 127.0.0.1 that notifications are sent to in the tests: an HTTP receiver (webhooks,
verified with the standardwebhooks library, or Slack-like, checking Block Kit) and an SMTP server
(aiosmtpd). Never the internet.

The HTTP receiver is a small asyncio server (HTTP/1.1, one request per connection). It can answer
with any status, hang longer than the sender's timeout, or be down (its port reserved but not
listening, so connections are refused). ``serve_in_thread`` runs one for a test that is not async.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_secret() -> str:
    """A Standard Webhooks secret, as the README tells users to make one."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int  # the status this receiver answered with
    received_at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)


# Block Kit: the block and element types Leadrelay may send, and Slack's documented limits.
_BLOCK_TYPES = {"header", "section", "actions", "context", "divider"}


def block_kit_problems(message: Any) -> list[str]:
    """What is wrong with a Slack incoming-webhook message (empty: nothing)."""
    problems: list[str] = []
    if not isinstance(message, dict):
        return ["not a JSON object"]
    if not isinstance(message.get("text"), str) or not message["text"]:
        problems.append("no fallback text")
    blocks = message.get("blocks")
    if not isinstance(blocks, list) or not blocks or len(blocks) > 50:
        return [*problems, "blocks must be a list of 1 to 50 blocks"]
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in _BLOCK_TYPES:
            problems.append(f"block {i}: unknown type {kind!r}")
        if kind == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                problems.append(f"block {i}: a header needs plain_text of 1-150 characters")
        if kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"block {i}: a section needs text or fields")
            text = block.get("text")
            if text is not None and (text.get("type") not in ("mrkdwn", "plain_text") or len(text["text"]) > 3000):
                problems.append(f"block {i}: bad section text")
            fields = block.get("fields", [])
            if len(fields) > 10 or any(len(f.get("text", "")) > 2000 for f in fields):
                problems.append(f"block {i}: at most 10 fields of 2000 characters")
        if kind == "actions":
            for element in block.get("elements", []):
                if element.get("type") != "button" or not str(element.get("url", "")).startswith("http"):
                    problems.append(f"block {i}: an action must be a button with a URL")
    return problems


class HttpReceiver:
    """Records every request. ``secret`` given: verifies each as a Standard Webhook (failures are
    recorded in ``errors`` and answered 401). ``slack``: checks each body as Block Kit."""

    def __init__(self, *, secret: str | None = None, slack: bool = False, port: int | None = None) -> None:
        self.secret = secret
        self.slack = slack
        self.port = port or free_port()
        self.status = 200
        self.body = b"ok"
        self.delay = 0.0  # seconds before answering (longer than the sender's timeout: a hanging endpoint)
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests it held at once
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/leadrelay"

    def accepted(self) -> list[Request]:
        return [r for r in self.requests if 200 <= r.answered < 300]

    def webhooks(self, type_: str | None = None) -> list[dict[str, Any]]:
        """The bodies of the accepted (verified) webhooks, optionally of one type."""
        return [r.json() for r in self.accepted() if type_ is None or r.json()["type"] == type_]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _version = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status, payload = self.check(headers, body)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                if self.delay:
                    await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            self.requests.append(Request(method, path, headers, body, status))
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode() + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def check(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, headers)
            except (WebhookVerificationError, ValueError) as exc:
                self.errors.append(f"verification failed: {exc}")
                return 401, b"bad signature"
        if self.slack:
            problems = block_kit_problems(json.loads(body))
            if problems:
                self.errors.append(f"bad Block Kit: {problems}")
                return 400, b"invalid_blocks"
        return self.status, self.body


@contextlib.contextmanager
def serve_in_thread(receiver: HttpReceiver) -> Iterator[HttpReceiver]:
    """Run ``receiver`` on its own event loop in a thread (for tests that are not async)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(receiver.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "receiver did not start"
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(receiver.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_subtype() == subtype, f"no text/{subtype} part"
        return str(body.get_content())


class _Collector:
    def __init__(self, sink: Callable[[Mail], None]) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.sink(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 (in its own thread), collecting every message; with ``login`` (user,
    password) it offers AUTH over plain text (a test server has no certificate) and records each login."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.mails: list[Mail] = []
        self.logins: list[tuple[str, bool]] = []
        self._lock = threading.Lock()
        self._login = login
        auth: dict[str, Any] = {}
        if login is not None:
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(_Collector(self._add), hostname="127.0.0.1", port=self.port, **auth)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert self._login is not None
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (user, password) == self._login
        with self._lock:
            self.logins.append((user, ok))
        return AuthResult(success=ok, handled=False)

    def _add(self, mail: Mail) -> None:
        with self._lock:
            self.mails.append(mail)

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if address in m.rcpt_tos]

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
