"""The services as the console reaches them: over their HTTP APIs, with the signed-in person's own
token, so that every permission check stays in the services.

Distributed, each service has its base URL (``LEADRELAY_<SERVICE>_URL``); embedded, one
``httpx.ASGITransport`` calls the same process's app, with no socket in between.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from leadrelay.logging import get_logger

log = get_logger("console.services")
T = TypeVar("T")

SERVICES = ("intake", "scoring", "routing", "sla-monitor", "feedback")
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
ME_TTL_SECONDS = 30.0
ME_CACHE_SIZE = 2000


# The base URL of the services when the console calls its own process (embedded).
IN_PROCESS = "http://leadrelay.internal"


class Unavailable(Exception):
    """A service did not answer (down, or answered 503): the page says so, and the person retries."""

    def __init__(self, service: str, why: str) -> None:
        super().__init__(f"{service}: {why}")
        self.service = service


@dataclass(frozen=True)
class Reply:
    status: int
    data: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def detail(self) -> str:
        """The service's explanation of an error, as one line."""
        if isinstance(self.data, dict) and "detail" in self.data:
            detail = self.data["detail"]
            if isinstance(detail, list):  # field errors
                return "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in detail)
            return str(detail)
        return str(self.data)[:300]


@dataclass(frozen=True)
class Me:
    """The signed-in person, as GET /v1/me describes them."""

    id: str
    name: str
    role: str
    territories: tuple[str, ...]
    email: str | None
    expires_at: str | None

    @property
    def sees_everything(self) -> bool:
        return self.role in ("ops", "admin")

    @property
    def manages(self) -> bool:
        return self.role in ("manager", "ops", "admin")


class Services:
    """Calls the services' APIs as the person whose token is given."""

    def __init__(self, client: httpx.AsyncClient, bases: Mapping[str, str]) -> None:
        missing = [s for s in SERVICES if s not in bases]
        if missing:
            raise ValueError(f"no base URL for {', '.join(missing)}")
        self.client = client
        self.bases = {k: v.rstrip("/") for k, v in bases.items()}
        self._me: dict[str, tuple[float, Me | None]] = {}

    @classmethod
    def over_http(cls, bases: Mapping[str, str]) -> Services:
        """Distributed: each service at its own base URL."""
        return cls(httpx.AsyncClient(timeout=TIMEOUT), bases)

    @classmethod
    def in_process(cls, app: Any) -> Services:
        """Embedded: the app of this very process, called over ASGI."""
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=TIMEOUT)
        return cls(client, dict.fromkeys(SERVICES, IN_PROCESS))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def call(
        self,
        token: str,
        method: str,
        service: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request to ``service`` as the token's person. Raises :class:`Unavailable` when the
        service cannot be reached or answers 503."""
        url = self.bases[service] + path
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            r = await self.client.request(
                method, url, params=clean, json=json, headers={**(headers or {}), "Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            log.warning("service_unreachable", service=service, path=path, error=type(exc).__name__)
            raise Unavailable(service, "not reachable") from None
        if r.status_code == 503:
            raise Unavailable(service, "temporarily unavailable")
        try:
            data = r.json()
        except ValueError:
            data = {"detail": r.text[:300]}
        return Reply(r.status_code, data)

    async def get(self, token: str, service: str, path: str, **params: Any) -> Reply:
        return await self.call(token, "GET", service, path, params=params)

    async def ready(self) -> dict[str, str]:
        """Each service's /livez: what the console's own /readyz reports."""
        out: dict[str, str] = {}
        for service in SERVICES:
            try:
                r = await self.client.get(self.bases[service] + "/livez", timeout=3)
                out[service] = "ok" if r.status_code == 200 else f"answered {r.status_code}"
            except httpx.HTTPError as exc:
                out[service] = f"unreachable: {type(exc).__name__}"
        return out

    # ------------------------------------------------------------------ who

    async def me(self, token: str) -> Me | None:
        """The token's person, or None if the services refuse the token (expired, revoked, a
        source's key, or a person no longer in the rules). Cached briefly per token."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._me.get(key)
        if hit is not None and now - hit[0] < ME_TTL_SECONDS:
            return hit[1]
        r = await self.get(token, "sla-monitor", "/v1/me")
        me: Me | None = None
        if r.ok and isinstance(r.data, dict) and r.data.get("kind") == "person":
            d = r.data
            me = Me(
                id=str(d["id"]),
                name=str(d["name"]),
                role=str(d["role"]),
                territories=tuple(d.get("territories") or ()),
                email=d.get("email"),
                expires_at=d.get("expires_at"),
            )
        elif r.status not in (401, 403):
            raise Unavailable("sla-monitor", f"GET /v1/me answered {r.status}")
        if len(self._me) >= ME_CACHE_SIZE:
            self._me.clear()
        self._me[key] = (now, me)
        return me

    def forget(self, token: str) -> None:
        self._me.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    # ------------------------------------------------------------------ look-ups

    async def lead_names(self, token: str, lead_ids: Iterable[str], known: dict[str, dict[str, Any]]) -> None:
        """Fill ``known`` with each lead's contact (name, company) from its assignment, for lists
        that carry only ids (alerts, the review board, the hot list). At most 8 requests at once."""
        wanted = [lid for lid in dict.fromkeys(lead_ids) if lid not in known]
        limit = asyncio.Semaphore(8)

        async def one(lead_id: str) -> None:
            async with limit:
                r = await self.get(token, "routing", f"/v1/leads/{lead_id}/assignment")
            contact = r.data.get("handoff", {}).get("contact", {}) if r.ok and isinstance(r.data, dict) else {}
            known[lead_id] = contact

        await gather(one(lid) for lid in wanted)

    async def names(self, token: str) -> Names:
        """Reps and managers by name, and territories by name, from the territories the person
        may see (``GET /v1/territories``, which has them from the rules); empty if it refuses."""
        r = await self.get(token, "routing", "/v1/territories")
        if not r.ok or not isinstance(r.data, list):
            return Names({}, {})
        people: dict[str, str] = {}
        for t in r.data:
            people.update(zip(t.get("managers") or (), t.get("manager_names") or (), strict=False))
            people.update({rep["id"]: rep["name"] for rep in t.get("reps", [])})
        return Names(people, {t["id"]: t["name"] for t in r.data})


@dataclass(frozen=True)
class Names:
    """Names for the ids the lists carry; an id not here is shown as it is."""

    people: dict[str, str]  # rep or manager id -> name
    territories: dict[str, str]  # territory id -> name

    def knows(self, people: Iterable[str | None] = (), territories: Iterable[str | None] = ()) -> bool:
        return all(p in self.people for p in people) and all(t in self.territories for t in territories)


async def gather(jobs: Iterable[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*jobs))
