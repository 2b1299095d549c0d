"""The API docs page: vendored Swagger UI, pinned by hash, with integrity attributes and a policy."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from fastapi import FastAPI

from leadrelay import apidocs

PINNED = apidocs.ASSETS / "README.md"


def test_the_vendored_files_are_those_the_readme_pins() -> None:
    readme = PINNED.read_text(encoding="utf-8")
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        digest = hashlib.sha256((apidocs.ASSETS / name).read_bytes()).hexdigest()
        assert f"`{name}`: `{digest}`" in readme, name


def test_the_page_pins_each_script_and_stylesheet_and_loads_nothing_from_elsewhere() -> None:
    page = apidocs.page("Leadrelay <test>", "/openapi.json")
    tags = re.findall(r"<(?:script|link rel=\"stylesheet\")[^>]*>", page)
    assert len(tags) == 3, tags
    for tag in tags:
        name = re.search(r'(?:src|href)="/docs/assets/([^"]+)"', tag)
        assert name is not None, tag
        expected = (
            "sha384-"
            + base64.b64encode(hashlib.sha384((apidocs.ASSETS / name.group(1)).read_bytes()).digest()).decode()
        )
        assert f'integrity="{expected}"' in tag
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert "Leadrelay &lt;test&gt; - API" in page
    assert "<script>" not in page  # no inline script: the policy allows none


@pytest.mark.parametrize("name", ["../apidocs.py", "README.md", "swagger-ui.css.map", "LICENSE.txt"])
async def test_only_the_named_assets_are_served(name: str) -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    apidocs.install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get(f"/docs/assets/{name}")).status_code == 404


async def test_docs_answers_with_its_policy_and_the_assets_with_their_types() -> None:
    app = FastAPI(title="Leadrelay", docs_url=None, redoc_url=None)
    apidocs.install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/docs")
        assert r.status_code == 200
        policy = r.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "default-src 'none'" in policy
        js = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert js.content == (apidocs.ASSETS / "swagger-ui-bundle.js").read_bytes()
        css = await client.get("/docs/assets/swagger-ui.css")
        assert css.headers["content-type"].startswith("text/css")
