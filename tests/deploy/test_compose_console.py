"""The console in docker-compose.yml, checked against the code without Docker: it runs
`leadrelay serve console` on the console's port, reaches every service at the URL and port that
service listens on in its own container, gets its secret from the host, and starts after them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from leadrelay import cli
from leadrelay.runtime import SERVICE_NAMES
from leadrelay.settings import DEFAULT_PORTS
from tests.deploy.test_compose import env_of, load_compose, published_ports, settings_from


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return load_compose()["services"]


def test_the_console_serves_on_its_port(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    console = services.get("console")
    assert console, "docker-compose.yml has no console service"
    assert console.get("command") == ["serve", "console"]
    assert published_ports(console) == [(DEFAULT_PORTS["console"], DEFAULT_PORTS["console"])]
    served: dict[str, Any] = {}
    settings_from(env_of(console), monkeypatch)
    monkeypatch.setattr(cli, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(cli, "build_console_app", lambda settings: {"console": settings})
    monkeypatch.setattr(cli, "_serve", lambda app, settings, port: served.update(app=app, port=port))
    assert cli.main(console["command"]) == 0
    assert served["port"] == DEFAULT_PORTS["console"]
    settings = served["app"]["console"]
    assert settings.host == "0.0.0.0"  # noqa: S104 - what a container needs
    for name, url in settings.service_urls().items():
        parts = urlsplit(url)
        assert parts.hostname == name, f"the console reaches {name} at {url}, not at the {name} container"
        assert parts.port == DEFAULT_PORTS[name], f"{name} listens on {DEFAULT_PORTS[name]}, the console calls {url}"
        assert name in services


def test_the_console_gets_its_secret_from_the_host_and_waits_for_the_services(services: dict[str, Any]) -> None:
    console = services["console"]
    env = console.get("environment") or {}
    assert "LEADRELAY_CONSOLE_SECRET_KEY" in env and env["LEADRELAY_CONSOLE_SECRET_KEY"] is None
    assert "LEADRELAY_AUTH_SIGNING_KEY" not in env, "the console verifies no token itself: it needs no signing key"
    assert "LEADRELAY_DATABASE_URL" not in env, "the console has no database"
    deps = console.get("depends_on") or {}
    for name in SERVICE_NAMES:
        assert (deps.get(name) or {}).get("condition") == "service_healthy", f"the console does not wait for {name}"
    test = " ".join((console.get("healthcheck") or {}).get("test") or [])
    assert f"127.0.0.1:{DEFAULT_PORTS['console']}/readyz" in test
