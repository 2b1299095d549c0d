"""The CLI and sign-in: `leadrelay token`, `leadrelay serve` refusing to start without a usable
signing key, and `leadrelay run` generating its keys and printing a token per example person."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import jwt
import pytest
from pydantic import SecretStr

from leadrelay import cli
from leadrelay.auth import API_KEYS_FILE, KEY_FILE, Tokens, generate_key
from leadrelay.settings import Settings
from tests.harness import EXAMPLE, example_rules


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No LEADRELAY_* variable of this machine; the example rules; a data folder of the test's own."""
    for key in list(os.environ):
        if key.startswith("LEADRELAY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LEADRELAY_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("LEADRELAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(cli, "configure_logging", lambda *args, **kwargs: None)
    return monkeypatch


def test_token_for_a_person_and_for_a_role(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    key = generate_key()
    env.setenv("LEADRELAY_AUTH_SIGNING_KEY", key)
    assert cli.main(["token", "karin.ek", "--ttl", "30m"]) == 0
    out, err = capsys.readouterr()
    claims = Tokens(key).verify(out.strip())
    assert (claims["sub"], claims["role"], claims["exp"] - claims["iat"]) == ("karin.ek", "manager", 1800)
    assert "karin.ek (manager, territories nordics, benelux)" in err and key not in err
    for role, first in [("ops", "ops.desk"), ("admin", "rita.admin"), ("rep", "astrid.lindqvist")]:
        assert cli.main(["token", "--role", role]) == 0
        assert Tokens(key).verify(capsys.readouterr().out.strip())["sub"] == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token", "nobody"], "no person 'nobody'"),
        (["token"], "give a USER_ID or --role ROLE"),
        (["token", "karin.ek", "--role", "ops"], "give a USER_ID or --role ROLE"),
        (["token", "karin.ek", "--ttl", "90d"], "at most 30 days"),
        (["token", "karin.ek", "--ttl", "soon"], "not a duration"),
    ],
)
def test_token_mistakes(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    env.setenv("LEADRELAY_AUTH_SIGNING_KEY", generate_key())
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err


def test_token_without_a_key(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["token", "ops.desk"]) == 2
    assert "LEADRELAY_AUTH_SIGNING_KEY is not set" in capsys.readouterr().err
    assert not (tmp_path / "data" / KEY_FILE).exists(), "`leadrelay token` must not invent a key"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "LEADRELAY_AUTH_SIGNING_KEY is not set"),
        ("too-short", "shorter than 32 characters"),
        ("change-me-change-me-change-me-change-me-please", "placeholder"),
    ],
)
def test_serve_refuses_to_start_without_a_usable_key(env: pytest.MonkeyPatch, key: str | None, message: str) -> None:
    if key is not None:
        env.setenv("LEADRELAY_AUTH_SIGNING_KEY", key)
    with pytest.raises(SystemExit) as exit_:
        cli.build_service_app(Settings(), "intake")
    assert message in str(exit_.value) and "leadrelay serve intake" in str(exit_.value)
    if key is not None:
        assert key not in str(exit_.value)


def test_serve_refuses_a_bad_previous_key_or_api_key(env: pytest.MonkeyPatch) -> None:
    env.setenv("LEADRELAY_AUTH_SIGNING_KEY", generate_key())
    env.setenv("LEADRELAY_AUTH_PREVIOUS_SIGNING_KEY", "old")
    with pytest.raises(SystemExit, match="LEADRELAY_AUTH_PREVIOUS_SIGNING_KEY is shorter"):
        cli.build_service_app(Settings(), "intake")
    env.delenv("LEADRELAY_AUTH_PREVIOUS_SIGNING_KEY")
    env.setenv("LEADRELAY_API_KEY_CRM", "crm")
    with pytest.raises(SystemExit, match="LEADRELAY_API_KEY_CRM: a key is shorter"):
        cli.build_service_app(Settings(), "intake")
    env.setenv("LEADRELAY_API_KEY_CRM", generate_key())
    app = cli.build_service_app(Settings(), "intake")
    assert app.state.auth.api_keys.match(os.environ["LEADRELAY_API_KEY_CRM"]) == "crm"


def test_run_generates_its_keys_and_prints_a_token_per_example_person(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = cli.build_embedded_app(Settings())
    data = tmp_path / "data"
    for name in (KEY_FILE, API_KEYS_FILE):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    key = (data / KEY_FILE).read_text().strip()
    banner = cli.sign_in_banner(app.state.auth, app.state.generated_api_keys, "http://127.0.0.1:8000", data)
    # One sign-in link per person, for the console: http://127.0.0.1:8000/login?token=<token>
    links = [line.strip() for line in banner.splitlines() if "/login?token=" in line]
    assert all(link.startswith("http://127.0.0.1:8000/login?token=eyJ") for link in links), links
    tokens = [link.split("/login?token=", 1)[1] for link in links]
    people = {Tokens(key).verify(t)["sub"]: Tokens(key).verify(t)["role"] for t in tokens}
    assert people == {
        "astrid.lindqvist": "rep",
        "jonas.becker": "rep",
        "sanne.devries": "rep",
        "wang.fang": "rep",
        "olivia.smith": "rep",
        "karin.ek": "manager",
        "tom.weber": "manager",
        "ops.desk": "ops",
        "rita.admin": "admin",
    }
    for source in example_rules().sources:
        assert app.state.generated_api_keys[source.id] in banner
    # The next start uses the same key, so the tokens printed before still work;
    # `leadrelay token` signs with it too. (One process holds the embedded log at a time.)
    asyncio.run(app.state.runtime.bus.stop())
    again = cli.build_embedded_app(Settings())
    assert again.state.auth.authenticate(tokens[0], None).id == "astrid.lindqvist"
    assert cli.main(["token", "ops.desk"]) == 0
    assert again.state.auth.authenticate(capsys.readouterr().out.strip(), None).id == "ops.desk"


def test_run_uses_the_key_it_is_given(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = generate_key()
    app = cli.build_embedded_app(Settings(auth_signing_key=SecretStr(key)))
    assert not (tmp_path / "data" / KEY_FILE).exists()
    token = app.state.auth.issue("tom.weber")
    assert jwt.get_unverified_header(token)["kid"] == Tokens(key).current.kid
    env.setenv("LEADRELAY_AUTH_SIGNING_KEY", "placeholder-placeholder-placeholder")
    with pytest.raises(Exception, match="placeholder"):
        cli.build_embedded_app(Settings())
