"""The FastAPI application: routes of the hosted services, health, metrics and error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import OperationalError

from leadrelay import __version__, apidocs, contract
from leadrelay.asyncapi import stored_document
from leadrelay.auth import (
    METRICS_READERS,
    PUBLIC,
    Authenticator,
    Principal,
    allow,
    api_routes,
    authenticated_operations,
    check_routes,
    principal,
)
from leadrelay.db import is_postgres
from leadrelay.inputs import displayable
from leadrelay.limits import RequestLimits, declared_limits
from leadrelay.logging import get_logger
from leadrelay.runtime import Runtime, ServiceContext
from leadrelay.unavailable import Unavailable

log = get_logger("leadrelay.http")


# What a 503's body says of each dependency (the log gets the error itself).
_WHAT = {
    "postgresql": "the database (PostgreSQL) cannot be reached",
    "sqlite": "the database (SQLite) cannot take the request",
    "kafka": "the broker (Kafka) cannot be reached",
}


def unavailable_response(exc: Unavailable) -> JSONResponse:
    """503 with ``Retry-After`` and a body naming the dependency: ``{"detail", "dependency"}``."""
    what = exc.public or _WHAT.get(exc.dependency, f"{exc.dependency} cannot be reached")
    return JSONResponse(
        {"detail": f"{what}; retry after {exc.retry_after} s", "dependency": exc.dependency},
        status_code=503,
        headers={"Retry-After": str(exc.retry_after)},
    )


def _service_up(ctx: ServiceContext[Any]) -> Any:
    """A dependency of every route of a service with a database: 503 until the database was reached
    and migrated (a service starts while its database is down, see ``Runtime.start``)."""

    async def service_up() -> None:
        if not ctx.up.is_set():
            raise Unavailable(ctx.database.dependency, f"{ctx.name}: database not reachable or not migrated yet")

    return Depends(service_up)


def create_app(runtime: Runtime, title: str, auth: Authenticator | None = None) -> FastAPI:
    """The app of the hosted services. ``auth`` defaults to one built from the settings and the
    environment (it raises :class:`leadrelay.auth.AuthConfigError` without a usable signing key)."""
    auth = auth or Authenticator.from_settings(runtime.settings, runtime.rules)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    # FastAPI's own OpenTelemetry hooks cost a provider lookup per request even when no provider
    # is configured (about 5% of intake's CPU): on only when asked for.
    otel = runtime.settings.opentelemetry
    telemetry = None if otel else TelemetryConfig(tracing=False, metrics=False, logs=False)
    app = FastAPI(
        title=title, version=__version__, lifespan=lifespan, telemetry=telemetry, docs_url=None, redoc_url=None
    )
    apidocs.install(app)
    app.state.runtime = runtime
    app.state.auth = auth
    declared = []
    # A route touches a database (its service has one) or the broker (it publishes: every POST).
    storage: set[tuple[str, str]] = set()
    for svc, ctx in zip(runtime.definitions, runtime.contexts, strict=True):
        router = svc.router(ctx)
        check_routes(router.routes)  # each route authenticates its caller or is public on purpose
        declared += declared_limits(router.routes)
        before = len(app.routes)
        # A service that spools (intake) takes requests before its database is up: it publishes directly.
        gated = ctx.db is not None and not svc.spools_events
        app.include_router(router, dependencies=[_service_up(ctx)] if gated else None)
        for route in api_routes(app.routes[before:]):  # the service's routes, nested routers included
            storage.update((route.path, m) for m in route.methods or () if gated or m == "POST")
    # Every status each route can answer, in the OpenAPI document (leadrelay.contract).
    contract.install(
        app,
        runtime.contexts[0].rules if runtime.contexts else None,
        storage,
        lambda: authenticated_operations(app.routes),
    )
    # The services' own middleware (intake's CORS policy), inside the limits.
    for svc, ctx in zip(runtime.definitions, runtime.contexts, strict=True):
        if svc.middleware is not None:
            mw = svc.middleware(ctx)
            app.add_middleware(mw.cls, *mw.args, **mw.kwargs)
    # Size and depth limits before anything parses the request (leadrelay.limits).
    settings = runtime.settings
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
        max_header_bytes=settings.max_header_bytes,
        declared=declared,
    )

    @app.get("/livez", tags=["health"], dependencies=[PUBLIC])
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        dependencies=[PUBLIC],
        response_model=contract.Readiness,
        responses={503: {"model": contract.Readiness, "description": "A dependency is down or a consumer is stuck."}},
    )
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ok = runtime.ready(checks)
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    # Prometheus scrapes with a monitoring source's API key as its bearer credential, unless
    # LEADRELAY_METRICS_PUBLIC=true (e.g. when only the scraper can reach the port).
    metrics_access = PUBLIC if auth.metrics_public else Depends(allow(*METRICS_READERS))

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse, dependencies=[metrics_access])
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["contract"], dependencies=[PUBLIC])
    async def asyncapi() -> dict[str, Any]:
        """The AsyncAPI 3.0 document of the topics: channels, keys, CloudEvents headers, payload schemas."""
        return stored_document()

    @app.get("/v1/me", tags=["auth"])
    async def me(who: Annotated[Principal, Depends(principal)]) -> dict[str, Any]:
        """Who the caller is: a person (role, territories) or a machine source."""
        out: dict[str, Any] = {"kind": who.kind, "id": who.id, "name": who.name, "role": who.role}
        if who.is_person:
            out["email"] = who.email
            out["territories"] = sorted(who.territories)
            out["expires_at"] = who.expires_at
        return out

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse({"detail": _displayable(errors)}, status_code=422)

    # A dependency down: the database engine (leadrelay.db) and the Kafka bus raise Unavailable
    # for a refused, timed-out or lost connection, so every route answers 503 within seconds.
    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        log.warning("dependency_unavailable", path=request.url.path, dependency=exc.dependency, error=exc.detail)
        return unavailable_response(exc)

    # Any other operational error of the database (SQLite: "database is locked") is worth a retry too.
    @app.exception_handler(OperationalError)
    async def _db_busy(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database_unavailable", path=request.url.path, error=repr(exc.orig))
        dependency = "postgresql" if is_postgres(runtime.settings.database_url or "") else "sqlite"
        return unavailable_response(Unavailable(dependency, repr(exc.orig)))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": _displayable(jsonable_encoder(exc.detail))}, status_code=exc.status_code, headers=exc.headers
        )

    check_routes(app.router.routes)
    return app


def _displayable(detail: Any) -> Any:
    """An error detail that can be sent as UTF-8 even when it names a field the client spelt with an
    unpaired surrogate (a refused field is named as the client sent it)."""
    if isinstance(detail, str):
        return displayable(detail)
    if isinstance(detail, list):
        return [_displayable(d) for d in detail]
    if isinstance(detail, dict):
        return {_displayable(k): _displayable(v) for k, v in detail.items()}
    return detail


def field_errors(errors: list[dict[str, Any]]) -> HTTPException:
    """A 422 in the same shape FastAPI uses for body validation."""
    return HTTPException(status_code=422, detail=errors)
