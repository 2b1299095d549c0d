"""The app's routes checked: each authenticates its caller or is marked public, and which may
answer 401 and 403."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from leadrelay.auth.dependencies import principal, public_route


def _depends_on(dependant: Dependant, targets: set[Callable[..., Any]]) -> bool:
    return any(d.call in targets or _depends_on(d, targets) for d in dependant.dependencies)


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, including those of routers included into others (FastAPI keeps an included
    router as one entry; Leadrelay's routers include theirs without a prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from api_routes(nested.routes)


def authenticated_operations(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """(path, METHOD) of every route that needs a credential: it may answer 401 and 403."""
    return {
        (route.path, method)
        for route in api_routes(routes)
        if _depends_on(route.dependant, {principal})
        for method in route.methods or ()
    }


def check_routes(routes: Iterable[BaseRoute]) -> None:
    """Every API route must authenticate its caller or be marked public: raises otherwise."""
    missing = []
    for route in api_routes(routes):
        if not _depends_on(route.dependant, {principal, public_route}):
            missing.append(f"{sorted(route.methods or [])} {route.path}")
    if missing:
        raise RuntimeError("routes with neither allow(...) nor PUBLIC: " + "; ".join(missing))
