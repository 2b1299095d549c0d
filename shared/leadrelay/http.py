"""The FastAPI application: routes of the hosted services, health, metrics and error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import OperationalError

from leadrelay import __version__, contract
from leadrelay.asyncapi import stored_document
from leadrelay.logging import get_logger
from leadrelay.service import Runtime

log = get_logger("leadrelay.http")


class ServiceUnavailable(Exception):
    """A dependency (database, broker) cannot take the request now: 503, the client may retry."""


def create_app(runtime: Runtime, title: str) -> FastAPI:
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
    app = FastAPI(title=title, version=__version__, lifespan=lifespan, telemetry=telemetry)
    app.state.runtime = runtime
    app.add_middleware(contract.BodyLimit, max_bytes=runtime.settings.max_body_bytes)
    # A route touches a database (its service has one) or the broker (it publishes: every POST).
    storage: set[tuple[str, str]] = set()
    for svc, ctx in zip(runtime.definitions, runtime.contexts, strict=True):
        router = svc.router(ctx)
        for route in router.routes:
            if isinstance(route, APIRoute):
                storage.update((route.path, m) for m in route.methods or () if ctx.db is not None or m == "POST")
        app.include_router(router)
    contract.install(app, runtime.contexts[0].rules if runtime.contexts else None, storage)

    @app.get("/livez", tags=["health"])
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=contract.Readiness,
        responses={503: {"model": contract.Readiness, "description": "A dependency is down or a consumer is stuck."}},
    )
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["contract"])
    async def asyncapi() -> dict[str, Any]:
        """The AsyncAPI 3.0 document of the topics: channels, keys, CloudEvents headers, payload schemas."""
        return stored_document()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database_unavailable", path=request.url.path, error=repr(exc.orig))
        return JSONResponse(
            {"detail": "database unavailable, retry later"}, status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": jsonable_encoder(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    return app


def field_errors(errors: list[dict[str, Any]]) -> HTTPException:
    """A 422 in the same shape FastAPI uses for body validation."""
    return HTTPException(status_code=422, detail=errors)
