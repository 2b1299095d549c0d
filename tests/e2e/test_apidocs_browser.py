"""``/docs`` in a real browser (Debian's Chromium): Swagger UI from the vendored files, under the
page's content security policy, with no request leaving the server's origin."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Request, expect

from tests.e2e import test_console_browser as console_e2e
from tests.e2e.test_console_browser import Site, open_tab

pytestmark = [pytest.mark.slow]

browser_type_launch_args = console_e2e.browser_type_launch_args
browser = console_e2e.browser
embedded = console_e2e.embedded


def test_the_api_docs_render_from_this_origin_only(embedded: Site, browser: Browser) -> None:
    tab = open_tab(browser, embedded)
    origin = urlsplit(embedded.console).netloc
    requested: list[str] = []

    def seen(request: Request) -> None:
        requested.append(request.url)

    tab.page.on("request", seen)
    tab.page.goto(embedded.console + "/docs")
    # The operations render: Swagger UI ran and read /openapi.json.
    expect(tab.page.locator(".swagger-ui .info .title")).to_contain_text("Leadrelay")
    expect(tab.page.locator(".opblock-summary-path", has_text="/v1/forms/{form_id}/submissions").first).to_be_visible()
    tab.page.get_by_role("button", name="Authorize").first.click()
    expect(tab.page.get_by_text("Available authorizations")).to_be_visible()
    foreign = [u for u in requested if urlsplit(u).scheme in ("http", "https") and urlsplit(u).netloc != origin]
    assert not foreign, f"requests to other origins: {foreign}"
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in requested), requested
    tab.check_clean()
    tab.context.close()
