"""The interactive API documentation (``GET /docs``), served from vendored Swagger UI.

FastAPI's default page loads Swagger UI from a public CDN (a floating major version, no
integrity check, no content security policy) on the console's origin in embedded mode, and
shows a blank page offline. Here the files come from this package (``static/swagger-ui``,
vendored from the npm registry: see its README), each ``<script>`` and stylesheet carries its
Subresource Integrity hash, and the page's policy allows scripts from this origin only (no
inline script: the page's own start-up is ``docs.js``).
"""

from __future__ import annotations

import base64
import hashlib
import html
from functools import cache
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

from leadrelay.auth import PUBLIC

ASSETS = Path(__file__).parent / "static" / "swagger-ui"
ASSET_PATH = "/docs/assets"
# What /docs/assets serves: nothing else under the folder is reachable.
MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "docs.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Swagger UI styles elements inline and shows images from data: URLs; it reads only this origin.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@cache
def asset(name: str) -> bytes:
    return (ASSETS / name).read_bytes()


@cache
def integrity(name: str) -> str:
    """The Subresource Integrity value of a vendored file (``sha384-...``)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(asset(name)).digest()).decode()


def page(title: str, openapi_url: str) -> str:
    def script(name: str) -> str:
        return f'<script src="{ASSET_PATH}/{name}" integrity="{integrity(name)}"></script>'

    css = "swagger-ui.css"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} - API</title>
<link rel="icon" type="image/png" href="{ASSET_PATH}/favicon-32x32.png">
<link rel="stylesheet" href="{ASSET_PATH}/{css}" integrity="{integrity(css)}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{html.escape(openapi_url)}"></div>
{script("swagger-ui-bundle.js")}
{script("docs.js")}
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """``GET /docs`` and its assets on ``app`` (created with ``docs_url=None, redoc_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False, dependencies=[PUBLIC])
    async def docs() -> HTMLResponse:
        return HTMLResponse(
            page(app.title, openapi_url),
            headers={"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"},
        )

    @app.get(ASSET_PATH + "/{name}", include_in_schema=False, dependencies=[PUBLIC])
    async def docs_asset(name: str) -> Response:
        media_type = MEDIA_TYPES.get(name)
        if media_type is None:
            raise HTTPException(404, f"no such file: {name}")
        return Response(
            asset(name),
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )
